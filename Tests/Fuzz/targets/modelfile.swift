// libFuzzer target: the .edm model file reader (header, metadata, tensor directory, configs, version 2's
// components), then the look-ups the UNet's and the decoder's lowering make, each followed by a read at both
// ends of the tensor.
import _EdgeCore
import EdgeGraph
import EdgeModelFile
import EdgeSampler

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzModelFile(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    guard let mapped = try? MappedFile(copying: input, path: "fuzz.edm"),
          let file = try? ModelFile(mapped: mapped) else { return 0 }
    var sink: Float = 0
    for (name, shape) in file.unet.parameterShapes() {
        if shape.count == 1 {
            if let v = try? file.vector(name, count: shape[0]) { sink += v[0] + v[shape[0] - 1] }
        } else if let m = try? file.matrix(name, shape: shape) {
            let bytes = m.rows * m.columns * m.type.elementBytes
            sink += Float(m.values.load(fromByteOffset: 0, as: UInt8.self)) + Float(m.values.load(fromByteOffset: bytes - 1, as: UInt8.self))
            if let s = m.scales { sink += s[0] + s[m.rows - 1] }
        }
    }
    // A pipeline file's autoencoder: the look-ups the decoder's lowering makes.
    if let a = file.autoencoder {
        for p in AutoencoderGraph.decoder(a.config, batch: 1, prefix: a.prefix, latentSide: file.unet.sampleSize).parameters {
            if let m = try? file.matrix(p.name, shape: p.shape) {
                sink += Float(m.values.load(fromByteOffset: m.rows * m.columns * m.type.elementBytes - 1, as: UInt8.self))
            }
            if let v = try? file.floats(p.name, shape: p.shape) { sink += v[0] + v[p.shape.reduce(1, *) - 1] }
        }
    }
    keep(sink)
    precondition(file.weightBytes >= 0 && file.parameterCount >= 0)
    _ = file.unet.multiplyAccumulates()
    for steps in Set([1, min(10, file.schedule.numTrainTimesteps), file.schedule.numTrainTimesteps]) {
        _ = try? DDIMSchedule(config: file.schedule, steps: steps)
            // Every sampler builds its schedule from the same config (σ tables, Karras σ's, PNDM's indices).
            for kind in SamplerKind.allCases {
                for settings in [SamplerSettings(kind: kind), SamplerSettings(kind: kind, karras: kind.hasKarrasSigmas, pndmPRK: kind == .pndm)] {
                    _ = try? AnySampler(settings, schedulerConfig: file.schedule, steps: steps)
                }
            }
    }
    return 0
}

/// Keeps the loads above from being optimised away, so AddressSanitizer sees each of them.
@inline(never) func keep(_ x: Float) { _ = x }
