// The umbrella re-exports the sampler vocabulary a caller of the pipelines needs (SamplerKind,
// SamplerSettings, the samplers themselves), so `import EdgeDDIM` is enough to choose one.
@_exported import EdgeSampler
// And the model families' configs (UNetConfig), which a ModelFile exposes.
@_exported import EdgeGraph
// And the model file (ModelFile: open a converted model, read its configs), which every call takes.
@_exported import EdgeModelFile
