import _EdgeQuant

/// Reference fully connected layer: out[m, j] = bias[j] + Σ_k x[m, k] · W[j, k].
///
/// - x: [M, K]; weight: N rows of K; bias: [N]; out: [M, N] (must not alias x).
/// - rowScratch: K floats for the dequantised weight row.
public func linearRef(x: UnsafePointer<Float>, rows m: Int, weight: WeightMatrix, bias: UnsafePointer<Float>,
                      output: UnsafeMutablePointer<Float>, rowScratch: UnsafeMutablePointer<Float>) {
    let (n, k) = (weight.rows, weight.columns)
    for j in 0 ..< n {
        weight.dequantizeRow(j, into: rowScratch)
        for r in 0 ..< m {
            let row = x + r * k
            var acc: Float = 0
            for i in 0 ..< k { acc += row[i] * rowScratch[i] }
            output[r * n + j] = acc + bias[j]
        }
    }
}
