import XCTest
import _EdgeCore
import _EdgeQuant
import EdgeGraph
import _EdgeKernels
import EdgeModelFile
import EdgeConvert
@_spi(Testing) import EdgeUNet

/// The one graph description per model family, and what derives from it: parameters (against the tensors
/// diffusers wrote), the MAC count (against an independent closed form and the DDPM paper's parameter
/// counts), the fusion pass, the kernel each node is lowered to, and the memory plan.
final class GraphTests: XCTestCase {
    /// Fixture UNets written by diffusers (tools/reference/make_fixtures.py).
    let fixtures = ["celebahq-like", "cifar10-like", "single-level-attn", "three-level-sharded", "two-level-midscale"]

    func config(_ fixture: String) throws -> UNetConfig {
        let path = fixturesRoot + "/unet/\(fixture)/config.json"
        return try DiffusersConfig.unet(JSONValue.parse(readWholeFile(path), context: path)).config
    }

    /// The graph declares exactly the tensors diffusers' UNet2DModel has, by name and shape, each once.
    func testParametersAreTheCheckpointsTensors() throws {
        for fixture in fixtures {
            let graph = UNet2DModelGraph.build(try config(fixture), batch: 1)
            let declared = Dictionary(graph.parameters.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in XCTFail("\(fixture): declared twice"); return a })
            let checkpoint = try SafetensorsCheckpoint(folder: fixturesRoot + "/unet/\(fixture)")
            let written = Dictionary(uniqueKeysWithValues: checkpoint.tensors.map { (Converter.canonicalName($0.tensor.name), $0.tensor.shape) })
            XCTAssertEqual(declared.count, graph.parameters.count, fixture)
            XCTAssertEqual(Set(declared.keys), Set(written.keys), fixture)
            for (name, shape) in written { XCTAssertEqual(declared[name], shape, "\(fixture): \(name)") }
            // Every parameter is read by exactly one node.
            var readers = [Int](repeating: 0, count: graph.parameters.count)
            for node in graph.nodes { for p in node.op.parameters { readers[p.index] += 1 } }
            XCTAssertEqual(readers, [Int](repeating: 1, count: graph.parameters.count), fixture)
        }
    }

    /// The published pixel-space DDPMs (Ho et al. 2020, Table/Appendix B: 35.7 M parameters at 32×32, 114 M
    /// at 256×256), with the configs of google/ddpm-cifar10-32 and google/ddpm-celebahq-256.
    func testPublishedConfigsHaveThePapersParameterCounts() throws {
        var cifar = UNetConfig()
        cifar.sampleSize = 32
        cifar.blockOutChannels = [128, 256, 256, 256]
        cifar.downBlockTypes = [.down, .attnDown, .down, .down]
        cifar.upBlockTypes = [.up, .up, .attnUp, .up]
        cifar.attentionHeadDim = nil
        cifar.flipSinToCos = false
        cifar.freqShift = 1
        cifar.downsamplePadding = 0
        cifar.normEps = 1e-6
        try cifar.validate()
        XCTAssertEqual(Double(UNet2DModelGraph.build(cifar, batch: 1).parameterCount) / 1e6, 35.7, accuracy: 0.05)

        var celebahq = cifar
        celebahq.sampleSize = 256
        celebahq.blockOutChannels = [128, 128, 256, 256, 512, 512]
        celebahq.downBlockTypes = [.down, .down, .down, .down, .attnDown, .down]
        celebahq.upBlockTypes = [.up, .attnUp, .up, .up, .up, .up]
        try celebahq.validate()
        XCTAssertEqual(Double(UNet2DModelGraph.build(celebahq, batch: 1).parameterCount) / 1e6, 114, accuracy: 0.5)
    }

    /// Multiply-accumulates against a closed form written independently of the graph (layer by layer, as the
    /// counts were computed before the graph existed), for one image and for a batch.
    func testMultiplyAccumulatesMatchAClosedForm() throws {
        var configs = try fixtures.map(config)
        var big = UNetConfig()
        big.sampleSize = 256
        big.blockOutChannels = [128, 128, 256, 256, 512, 512]
        big.downBlockTypes = [.down, .down, .down, .down, .attnDown, .down]
        big.upBlockTypes = [.up, .attnUp, .up, .up, .up, .up]
        configs.append(big)
        configs.append(UNetConfig())
        for c in configs {
            let expected = closedFormMultiplyAccumulates(c)
            XCTAssertEqual(UNet2DModelGraph.build(c, batch: 1).multiplyAccumulateCount, expected)
            XCTAssertEqual(UNet2DModelGraph.build(c, batch: 3).multiplyAccumulateCount, 3 * expected)
            XCTAssertEqual(Double(c.multiplyAccumulates()), expected)
        }
    }

    /// The fast backend's pass folds every upsampling into the convolution after it; nothing else changes.
    func testUpsamplingIsFoldedIntoTheNextConvolution() throws {
        let graph = UNet2DModelGraph.build(try config("celebahq-like"), batch: 2)
        let folded = graph.foldingUpsampleIntoConvolutions()
        let upsamplers = graph.nodes.filter { if case .upsampleNearest2x = $0.op { true } else { false } }
        XCTAssertFalse(upsamplers.isEmpty)
        XCTAssertEqual(folded.nodes.count, graph.nodes.count - upsamplers.count)
        XCTAssertFalse(folded.nodes.contains { if case .upsampleNearest2x = $0.op { true } else { false } })
        let foldedConvs = folded.nodes.compactMap { node -> String? in
            if case let .conv2d(c) = node.op, c.upsampledInput { node.name } else { nil }
        }
        XCTAssertEqual(foldedConvs, upsamplers.map { $0.name.replacingOccurrences(of: ".interpolate", with: ".conv") })
        XCTAssertEqual(folded.parameters.map(\.name), graph.parameters.map(\.name))
        XCTAssertEqual(folded.multiplyAccumulateCount, graph.multiplyAccumulateCount)
    }

    /// Each node is lowered once to the kernel its weights and the backend call for.
    func testLoweringChoosesOneKernelPerNode() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let folder = fixturesRoot + "/unet/celebahq-like"
        let threads = Threads(2)
        for weights in [WeightType.f32, .f16, .q8PerChannel] {
            let model = try convertedModel(folder, weights: weights, into: temp)
            let graph = UNet2DModelGraph.build(model.unet, batch: 2)
            for (backend, int8) in [(UNetBackend.reference, false), (.fast, false), (.fast, true)] where !int8 || weights == .q8PerChannel {
                let program = try lower(graph, model: model, backend: backend, threads: threads, int8: int8)
                var packedBytes = 0
                for (i, step) in program.steps.enumerated() {
                    let name = program.names[i]
                    switch step {
                    case let .conv2d(c):
                        switch (c.kernel, backend) {
                        case (.reference, .reference): break
                        case let (.q8(p), .fast):
                            XCTAssertTrue(int8 && Q8Policy.pays(c.shape), name)
                            packedBytes += p.bytes
                        case let (.f32(p), .fast):
                            // fp32 panels at load, but for int8 weights on fp32 activations (packed per call);
                            // the int8 path leaves only what Q8Policy says does not pay (conv_in, small 1×1s).
                            XCTAssertTrue(!int8 || !Q8Policy.pays(c.shape), name)
                            XCTAssertEqual(p == nil, weights == .q8PerChannel && !int8, name)
                            XCTAssertNil(WinogradTile.preferred(for: c.shape, weightsTransformedPerCall: p == nil), "\(name): Winograd applies")
                            packedBytes += p?.bytes ?? 0
                        case let (.winograd(tile, p), .fast):
                            // The tile the policy picks; transformed at load unless the weights stay int8 (fp32 activations).
                            XCTAssertFalse(int8, name)
                            XCTAssertEqual(p == nil, weights == .q8PerChannel, name)
                            XCTAssertEqual(tile, WinogradTile.preferred(for: c.shape, weightsTransformedPerCall: p == nil), name)
                            packedBytes += p?.bytes ?? 0
                        default: XCTFail("\(name): \(c.kernel) on \(backend)")
                        }
                        XCTAssertEqual(c.upsampledInput, backend == .fast && name.hasSuffix("upsamplers.0.conv"), name)
                    case let .attention(a):
                        switch (a.kernel, backend) {
                        case (.reference, .reference): break
                        case let (.fast(projections), .fast):
                            let all = [projections.q, projections.k, projections.v, projections.out]
                            for kernel in all {
                                switch kernel {
                                case let .q8(p):
                                    XCTAssertTrue(int8 && Q8Policy.pays(a.projection(batch: 1)), name)
                                    packedBytes += p.bytes
                                case let .f32(_, p):
                                    XCTAssertTrue(!int8 || !Q8Policy.pays(a.projection(batch: 1)), name)
                                    XCTAssertEqual(p == nil, weights == .q8PerChannel && !int8, name)
                                    packedBytes += p?.bytes ?? 0
                                }
                            }
                        default: XCTFail("\(name): \(a.kernel) on \(backend)")
                        }
                    case let .linear(_, _, _, _, _, _, fast), let .groupNorm(_, _, _, _, _, _, _, _, _, fast):
                        XCTAssertEqual(fast, backend == .fast, name)
                    case .upsampleNearest2x:
                        XCTAssertEqual(backend, .reference, "\(name): the fast backend folds upsampling")
                    default: break
                    }
                }
                XCTAssertEqual(packedBytes, program.packedBytes)
                // Packed weights tile their memory without gaps or overlaps, in order.
                var at = 0
                for p in program.packed { XCTAssertEqual(p.offset, at); at += p.bytes }
                XCTAssertEqual(at, program.packedBytes)
            }
        }
    }

    /// Buffers live at the same step never share bytes, except a convolution's output and the residual or
    /// input it overwrites (same slot), which only meet at that step; a value no step touches takes none.
    /// On the int8 path the GroupNorms feeding int8 convolutions are folded away and the plan is smaller.
    func testMemoryPlanKeepsEveryLiveBufferApart() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        var arenas: [String: Int] = [:]
        for weights in [WeightType.f32, .q8PerChannel] {
            let model = try convertedModel(fixturesRoot + "/unet/celebahq-like", weights: weights, into: temp)
            let graph = UNet2DModelGraph.build(model.unet, batch: 2)
            for (backend, int8) in [(UNetBackend.reference, false), (.fast, false), (.fast, true)] where !int8 || weights == .q8PerChannel {
                let label = "\(weights == .f32 ? "fp32" : "int8") \(backend) int8=\(int8)"
                let program = try lower(graph, model: model, backend: backend, threads: Threads(2), int8: int8)
                arenas[label] = program.plan.totalBytes
                var live: [(first: Int, last: Int)] = Array(repeating: (Int.max, -1), count: program.bufferFloats.count)
                for (i, step) in program.steps.enumerated() {
                    for b in step.buffers { live[b.index] = (min(live[b.index].first, i), max(live[b.index].last, i)) }
                }
                for (_, v) in graph.inputs { live[v.index].first = 0 }
                for (_, v) in graph.outputs { live[v.index].last = program.steps.count }
                for i in live.indices where live[i].first == Int.max { XCTAssertEqual(program.bufferFloats[i], 0, "\(label): buffer \(i)") }
                let used = live.indices.filter { program.bufferFloats[$0] > 0 }
                var shared = 0
                for a in used {
                    for b in used where b > a && live[a].first <= live[b].last && live[b].first <= live[a].last {
                        if program.slots[a] == program.slots[b] {
                            // Only a handover: one dies at the step that writes the other, an int8 convolution over it.
                            let (dying, born) = live[a].last <= live[b].first ? (a, b) : (b, a)
                            XCTAssertEqual(live[dying].last, live[born].first, "\(label): buffers \(a) and \(b) share a slot while both live")
                            guard case let .conv2d(c) = program.steps[live[born].first], case .q8 = c.kernel, c.output.index == born,
                                  c.input.index == dying || c.concatenated?.index == dying || c.residual?.index == dying else {
                                XCTFail("\(label): buffers \(a) and \(b) share a slot without an int8 convolution handing over"); continue
                            }
                            shared += 1
                            continue
                        }
                        let (oa, ob) = (program.plan.offsets[program.slots[a]], program.plan.offsets[program.slots[b]])
                        XCTAssertTrue(oa + program.bufferFloats[a] * 4 <= ob || ob + program.bufferFloats[b] * 4 <= oa, "\(label): buffers \(a) and \(b) overlap")
                    }
                    XCTAssertLessThanOrEqual(program.plan.offsets[program.slots[a]] + program.bufferFloats[a] * 4, program.plan.totalBytes)
                }
                if int8 {
                    XCTAssertGreaterThan(shared, 0, "\(label): no output was written over a dying tensor")
                    let unfolded = program.steps.indices.filter { if case .groupNorm = program.steps[$0] { true } else { false } }.map { program.names[$0] }
                    // conv_norm_out's output stays written: it is a stage callers may observe.
                    XCTAssertEqual(unfolded, ["conv_norm_out"], "\(label): GroupNorms left unfolded")
                } else {
                    XCTAssertEqual(shared, 0, "\(label): only the int8 path overwrites")
                }
            }
        }
        print("arena bytes: \(arenas.sorted { $0.key < $1.key })")
        XCTAssertLessThan(arenas["int8 fast int8=true"]!, arenas["int8 fast int8=false"]!)
    }
}

/// Multiply-accumulates of one UNet2DModel evaluation for one image, counted layer by layer from the config
/// alone (convolutions at their output resolution, every ResNet block's time projection, the time MLP,
/// attention's four projections and two matmuls): the count edge-ddim used before the graph, kept as the
/// graph's independent check.
func closedFormMultiplyAccumulates(_ c: UNetConfig) -> Double {
    var macs = 0.0
    var side = c.sampleSize
    let ch = c.blockOutChannels
    func conv(_ o: Int, _ i: Int, _ k: Int, _ s: Int) { macs += Double(o) * Double(i) * Double(k * k) * Double(s) * Double(s) }
    func resnet(_ i: Int, _ o: Int, _ s: Int) {
        conv(o, i, 3, s); conv(o, o, 3, s); macs += Double(o) * Double(c.timeEmbedDim)
        if i != o { conv(o, i, 1, s) }
    }
    func attention(_ channels: Int, _ s: Int) { let p = Double(s) * Double(s), d = Double(channels); macs += 4 * p * d * d + 2 * p * p * d }
    macs += Double(c.timeEmbedDim) * Double(ch[0]) + Double(c.timeEmbedDim) * Double(c.timeEmbedDim)
    conv(ch[0], c.inChannels, 3, side)
    var output = ch[0]
    for i in 0 ..< ch.count {
        let input = output
        output = ch[i]
        for j in 0 ..< c.layersPerBlock {
            resnet(j == 0 ? input : output, output, side)
            if c.downBlockTypes[i] == .attnDown { attention(output, side) }
        }
        if i != ch.count - 1 { side /= 2; conv(output, output, 3, side) }
    }
    resnet(ch.last!, ch.last!, side)
    if c.addAttention { attention(ch.last!, side) }
    resnet(ch.last!, ch.last!, side)
    let reversed = Array(ch.reversed())
    output = reversed[0]
    for i in 0 ..< ch.count {
        let previous = output
        output = reversed[i]
        let input = reversed[min(i + 1, ch.count - 1)]
        for j in 0 ... c.layersPerBlock {
            let skip = j == c.layersPerBlock ? input : output
            resnet((j == 0 ? previous : output) + skip, output, side)
            if c.upBlockTypes[i] == .attnUp { attention(output, side) }
        }
        if i != ch.count - 1 { side *= 2; conv(output, output, 3, side) }
    }
    conv(c.outChannels, ch[0], 3, side)
    return macs
}
