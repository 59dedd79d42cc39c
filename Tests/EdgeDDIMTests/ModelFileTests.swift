import XCTest
import _EdgeCore
import EdgeGraph
import _EdgeQuant
import EdgeModelFile

final class ModelFileTests: XCTestCase {
    func testMetadataAndTensorsRoundTrip() throws {
        var config = UNetConfig()
        config.sampleSize = 16
        config.blockOutChannels = [32, 64]
        config.downBlockTypes = [.down, .attnDown]
        config.upBlockTypes = [.attnUp, .up]
        config.attentionHeadDim = nil
        config.attnNormNumGroups = 16
        config.timeEmbeddingDim = 96
        var schedule = NoiseScheduleConfig()
        schedule.betaSchedule = .squaredcosCapV2
        schedule.predictionType = .vPrediction
        schedule.numTrainTimesteps = 2  // one beta per timestep, or the reader refuses the schedule
        schedule.trainedBetas = [0.1, 0.2]
        schedule.stepsOffset = 1
        var metadata = Metadata()
        metadata.setUNet(config)
        metadata.setSchedule(schedule)

        let weights: [Float] = [1, 2, 3, 4, 5, 6]
        let tensors = [
            TensorRecord(name: "a.weight", type: .f32, shape: [2, 3], values: weights.withUnsafeBytes { Array($0) }),
            TensorRecord(name: "b.weight", type: .q8PerChannel, shape: [2, 3], values: [1, 2, 3, 0x81, 0, 0], scales: [0.5, 2]),
            TensorRecord(name: "c.bias", type: .f32, shape: [3], values: [Float](repeating: 7, count: 3).withUnsafeBytes { Array($0) }),
        ]
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let path = temp + "/m.edm"
        try ModelFileWriter.write(path, metadata: metadata, tensors: tensors)
        let file = try ModelFile(path: path)
        XCTAssertEqual(file.unet, config)
        XCTAssertEqual(file.schedule, schedule)
        XCTAssertEqual(file.entries.map(\.name), ["a.weight", "b.weight", "c.bias"])
        for e in file.entries { XCTAssertEqual(e.valuesOffset % ModelFormat.dataAlignment, 0, e.name) }
        var row = [Float](repeating: 0, count: 3)
        try file.matrix("a.weight", shape: [2, 3]).dequantizeRow(1, into: &row)
        XCTAssertEqual(row, [4, 5, 6])
        try file.matrix("b.weight", shape: [2, 3]).dequantizeRow(1, into: &row)
        XCTAssertEqual(row, [-254, 0, 0])
        XCTAssertEqual(try file.vector("c.bias", count: 3)[2], 7)
        XCTAssertThrowsError(try file.matrix("a.weight", shape: [3, 2]))
        XCTAssertThrowsError(try file.vector("b.weight", count: 6))
        XCTAssertThrowsError(try file.entry("nope"))
    }

    func testMemoryPlanKeepsLiveBuffersApart() {
        var random = TestRandom(seed: 7)
        for _ in 0 ..< 50 {
            let buffers = (0 ..< 30).map { _ -> MemoryPlan.Buffer in
                let first = random.int(0 ... 40)
                return MemoryPlan.Buffer(bytes: random.int(1 ... 5000), first: first, last: first + random.int(0 ... 10))
            }
            let plan = MemoryPlan(buffers)
            for i in buffers.indices {
                XCTAssertEqual(plan.offsets[i] % Arena.alignment, 0)
                XCTAssertLessThanOrEqual(plan.offsets[i] + buffers[i].bytes, plan.totalBytes)
                for j in buffers.indices where j > i {
                    let overlapInTime = buffers[i].first <= buffers[j].last && buffers[j].first <= buffers[i].last
                    let overlapInSpace = plan.offsets[i] < plan.offsets[j] + buffers[j].bytes && plan.offsets[j] < plan.offsets[i] + buffers[i].bytes
                    XCTAssertFalse(overlapInTime && overlapInSpace, "buffers \(i) and \(j) collide")
                }
            }
            // Never worse than giving every buffer its own space.
            XCTAssertLessThanOrEqual(plan.totalBytes, buffers.reduce(0) { $0 + alignUp($1.bytes, Arena.alignment) })
        }
    }
}
