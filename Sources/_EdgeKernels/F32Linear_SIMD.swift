import _EdgeQuant

/// Fully connected layer for a few rows (the UNet's time-embedding MLP and its per-ResNet projections):
///
///     out[m, j] = bias[j] + Σ_k x[m, k] · W[j, k]
///
/// Each weight row is dequantised once (`WeightMatrix.dequantizeRow`, the reference arithmetic) into
/// `rowScratch` and dotted with every input row using four F32Vector FMA chains, reduced at the end.
/// Why not the GEMM driver: M is the batch (1–4), so packing and a fork/join would cost more than the
/// 65 k multiply-adds of a 512 → 128 projection; one thread is enough.
///
/// Contract: x [M, K] row-major, out [M, N] must not alias x, bias [N]; rowScratch K floats. No alignment
/// assumed; reads exactly the operands; the K % lanes tail is scalar.
public func linearF32(x: UnsafePointer<Float>, rows m: Int, weight: WeightMatrix, bias: UnsafePointer<Float>,
                      output: UnsafeMutablePointer<Float>, rowScratch: UnsafeMutablePointer<Float>) {
    let (n, k) = (weight.rows, weight.columns)
    let lanes = F32Vector.scalarCount
    let full4 = k - k % (4 * lanes), full = k - k % lanes
    for j in 0 ..< n {
        weight.dequantizeRow(j, into: rowScratch)
        for r in 0 ..< m {
            let row = x + r * k
            var a0 = F32Vector(), a1 = F32Vector(), a2 = F32Vector(), a3 = F32Vector()
            var i = 0
            while i < full4 {
                a0 = a0.addingProduct(loadVector(row + i), loadVector(rowScratch + i))
                a1 = a1.addingProduct(loadVector(row + i + lanes), loadVector(rowScratch + i + lanes))
                a2 = a2.addingProduct(loadVector(row + i + 2 * lanes), loadVector(rowScratch + i + 2 * lanes))
                a3 = a3.addingProduct(loadVector(row + i + 3 * lanes), loadVector(rowScratch + i + 3 * lanes))
                i += 4 * lanes
            }
            while i < full { a0 = a0.addingProduct(loadVector(row + i), loadVector(rowScratch + i)); i += lanes }
            var acc = ((a0 + a1) + (a2 + a3)).sum()
            while i < k { acc = acc.addingProduct(row[i], rowScratch[i]); i += 1 }
            output[r * n + j] = acc + bias[j]
        }
    }
}
