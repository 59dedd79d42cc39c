import _EdgeCore

/// Checks the model families' configs share; each failure is one line naming the config.json field.
enum ConfigCheck {
    static let maxSide = 4096, maxChannels = 16384

    static func need(_ ok: Bool, _ field: String, _ why: String) throws {
        if !ok { throw EdgeError("config.json: \(field) \(why)") }
    }

    /// sample_size, in_channels, out_channels and block_out_channels in range.
    static func shape(sampleSize: Int, inChannels: Int, outChannels: Int, blockOutChannels: [Int]) throws {
        try need((1 ... maxSide).contains(sampleSize), "sample_size", "must be in 1...\(maxSide), got \(sampleSize)")
        try need((1 ... 64).contains(inChannels), "in_channels", "must be in 1...64, got \(inChannels)")
        try need((1 ... 64).contains(outChannels), "out_channels", "must be in 1...64, got \(outChannels)")
        try need(!blockOutChannels.isEmpty && blockOutChannels.count <= 12, "block_out_channels", "must have 1 to 12 entries, got \(blockOutChannels.count)")
        try need(blockOutChannels.allSatisfy { (1 ... maxChannels).contains($0) }, "block_out_channels", "entries must be in 1...\(maxChannels)")
    }

    /// Every level's activations of one image (sample_size / 2^i square, block_out_channels[i] wide) within
    /// `UNetConfig.maxActivationFloats`, so that sizes derived from the config stay far from Int overflow.
    static func activations(sampleSize: Int, blockOutChannels: [Int]) throws {
        for (i, c) in blockOutChannels.enumerated() {
            let side = sampleSize >> i
            try need(side * side * c <= UNetConfig.maxActivationFloats, "sample_size",
                     "\(sampleSize) with \(c) channels at level \(i) makes activations of \(side * side * c) values per image, more than the limit of \(UNetConfig.maxActivationFloats)")
        }
    }
}
