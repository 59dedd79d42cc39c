import _EdgeQuant

/// Reference token embedding (transformers' `CLIPTextEmbeddings`), written channel-major:
///
///     out[n, d, t] = table[ids[n, t], d] + positions[t, d]
///
/// - ids: [N, T] token ids stored as floats (exact below 2²⁴). An id outside 0 ..< table.rows is clamped into
///   it: callers check ids before running (`TextEncoder`), this only keeps a bad one from reading out of bounds.
/// - table: [vocabulary, D] and positions: [≥ T, D], any stored type (rows dequantised as `dequantizeRow` does).
/// - out: [N, D, T]; rowScratch: D floats.
public func tokenEmbeddingRef(ids: UnsafePointer<Float>, batch: Int, tokens: Int, table: WeightMatrix, positions: WeightMatrix,
                              output: UnsafeMutablePointer<Float>, rowScratch: UnsafeMutablePointer<Float>) {
    let d = table.columns
    precondition(positions.columns == d && positions.rows >= tokens, "tokenEmbeddingRef: table and positions disagree")
    for n in 0 ..< batch {
        let out = output + n * d * tokens
        for t in 0 ..< tokens {
            let id = ids[n * tokens + t]
            table.dequantizeRow(id.isNaN ? 0 : Int(min(max(id, 0), Float(table.rows - 1))), into: rowScratch)
            for f in 0 ..< d { out[f * tokens + t] = rowScratch[f] }
        }
        for t in 0 ..< tokens {
            positions.dequantizeRow(t, into: rowScratch)
            for f in 0 ..< d { out[f * tokens + t] += rowScratch[f] }
        }
    }
}
