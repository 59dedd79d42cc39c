import _EdgeQuant
import EdgeModelFile

/// Where a lowered graph's weights come from, by the graph's parameter names: a model file (mapped, used in
/// place) or, in tests, tensors held in memory. The source must outlive every program lowered from it; the
/// executable keeps it.
public protocol WeightSource: AnyObject {
    /// A weight as an O × (everything else) matrix of any stored type.
    func matrix(_ name: String, shape: [Int]) throws -> WeightMatrix
    /// An fp32 tensor of `shape` that must not be quantised (biases, norms, a VQ codebook); `why` ends the
    /// error when it is stored otherwise.
    func floats(_ name: String, shape: [Int], why: String) throws -> UnsafePointer<Float>
    /// Whether any weight is stored as int8 (the int8 path is possible).
    var hasInt8Weights: Bool { get }
    /// Bytes the source stores for the tensor `name` (values and scales), 0 if it has none.
    func storedBytes(_ name: String) -> Int
    /// Called after `weight` was repacked into another layout: its original pages may leave memory.
    func dropResidentPages(of weight: WeightMatrix)
}

extension ModelFile: WeightSource {
    public var hasInt8Weights: Bool { entries.contains { $0.type == .q8PerChannel } }
    public func storedBytes(_ name: String) -> Int {
        guard let e = try? entry(name) else { return 0 }
        return e.valuesBytes + e.scalesBytes
    }
}
