// The umbrella re-exports the sampler vocabulary a caller of the pipelines needs (SamplerKind,
// SamplerSettings, the samplers themselves), so `import EdgeDDIM` is enough to choose one.
@_exported import EdgeSampler
