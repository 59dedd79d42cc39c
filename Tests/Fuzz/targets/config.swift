// libFuzzer target: the JSON parser and the diffusers config.json (UNet2DModel, UNet2DConditionModel, VQModel,
// AutoencoderKL), transformers' CLIPTextModel config.json, scheduler_config.json and model_index.json readers, then what the converter derives from an accepted config
// (parameter shapes, FLOPs, the noise schedule).
import _EdgeCore
import EdgeConvert
import EdgeGraph
import EdgeModelFile
import EdgeSampler

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    guard let json = try? JSONValue.parse(input, context: "fuzz config.json") else { return 0 }
    if let unet = try? DiffusersConfig.unet(json) {
        let shapes = unet.config.parameterShapes()
        precondition(!shapes.isEmpty)
        for (_, shape) in shapes { precondition(checkedProduct(shape) != nil) }
        precondition(unet.config.multiplyAccumulates() > 0)
    }
    if let unet = try? DiffusersConfig.conditionalUNet(json) {
        let shapes = unet.config.parameterShapes()
        precondition(!shapes.isEmpty)
        for (_, shape) in shapes { precondition(checkedProduct(shape) != nil) }
        precondition(unet.config.multiplyAccumulates() > 0)
    }
    if let text = try? DiffusersConfig.clipText(json) {
        let graph = CLIPTextModelGraph.graph(text.config, batch: 1)
        precondition(!graph.parameters.isEmpty && graph.multiplyAccumulateCount > 0)
        for p in graph.parameters { precondition(checkedProduct(p.shape) != nil) }
    }
    if let autoencoder = try? DiffusersConfig.autoencoder(json) {
        // What the converter derives from an accepted autoencoder config: both graphs' parameters and FLOPs.
        for graph in [AutoencoderGraph.decoder(autoencoder.config, batch: 1), AutoencoderGraph.encoder(autoencoder.config, batch: 1)] {
            precondition(!graph.parameters.isEmpty && graph.multiplyAccumulateCount > 0)
            for p in graph.parameters { precondition(checkedProduct(p.shape) != nil) }
        }
    }
    _ = try? DiffusersConfig.pipelineIndex(json)
    if let scheduler = try? DiffusersConfig.scheduler(json) {
        let config = scheduler.config
        // Every step count the command line accepts is 1...T; the ends and one middle value cover the
        // schedule arithmetic without running T schedules per input.
        for steps in Set([1, min(10, config.numTrainTimesteps), config.numTrainTimesteps]) {
            _ = try? DDIMSchedule(config: config, steps: steps)
            // Every sampler builds its schedule from the same config (σ tables, Karras σ's, PNDM's indices).
            for kind in SamplerKind.allCases {
                for settings in [SamplerSettings(kind: kind), SamplerSettings(kind: kind, karras: kind.hasKarrasSigmas, pndmPRK: kind == .pndm)] {
                    _ = try? AnySampler(settings, schedulerConfig: config, steps: steps)
                }
            }
        }
    }
    return 0
}
