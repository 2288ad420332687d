// The run-state codec and the step's ranges: a state survives encode and decode exactly, every field the decoder
// reads is checked (a wrong size, position or label is an error naming it), and the ranges follow the objective.
import Collective
import XCTest
@testable import Training

final class RunStateTests: XCTestCase {
    /// --checkpoint-every: N epochs or a time; due on the epoch count or once the time has passed.
    func testCheckpointCadence() throws {
        XCTAssertEqual(try CheckpointCadence(parsing: "3"), .epochs(3))
        XCTAssertEqual(try CheckpointCadence(parsing: "90s"), .seconds(90))
        XCTAssertEqual(try CheckpointCadence(parsing: "5m"), .seconds(300))
        XCTAssertEqual(try CheckpointCadence(parsing: "1.5h"), .seconds(5400))
        XCTAssertEqual(Recipe.checkpointEvery.description, "5m")
        XCTAssertEqual(CheckpointCadence.seconds(90).description, "90s")
        for bad in ["0", "-1", "0s", "abc", "5x", "1e9s", "nan", "infs", ""] {
            XCTAssertThrowsError(try CheckpointCadence(parsing: bad), bad)
        }
        XCTAssert(CheckpointCadence.epochs(2).due(epoch: 4, secondsSinceLast: 0))
        XCTAssertFalse(CheckpointCadence.epochs(2).due(epoch: 3, secondsSinceLast: 1e6))
        XCTAssert(CheckpointCadence.seconds(300).due(epoch: 1, secondsSinceLast: 300))
        XCTAssertFalse(CheckpointCadence.seconds(300).due(epoch: 1, secondsSinceLast: 299))
    }

    let expected = RunState.Expectation(kind: "dec-state", method: "dec", optimizerCount: 4, batchesPerEpoch: 3, sumCount: 3,
                                        samples: 5, clusters: 2, embedding: 2, sections: ["target": 10], metricsLines: 7)

    func state() -> RunState {
        var state = RunState()
        (state.epoch, state.step, state.batch, state.optimizerStep) = (2, 7, 1, 7)
        state.sums = [0.1, -2.5e-300, 3]
        (state.first, state.second) = ([1, 2, 3, 4], [5, 6, 7, 8])
        state.labels = [0, 1, 1, 0, 1]
        state.snapshots = [(0, [Float](repeating: 1, count: 10)), (2, [Float](repeating: 2, count: 10))]
        state.sections = ["target": [Float](repeating: 0.5, count: 10)]
        state.startScores = [0.9, 0.8, 0.7]
        state.alpha = 3.5
        return state
    }

    func encoded(_ state: RunState, _ edit: (inout Checkpoint) -> Void = { _ in }) -> Checkpoint {
        var checkpoint = Checkpoint(widths: [4, 2], clusters: 2, sections: [:], metadata: ["metrics_lines": "6"])
        state.encode(into: &checkpoint, kind: "dec-state", method: "dec")
        edit(&checkpoint)
        return try! Checkpoint.decode(checkpoint.encoded(), path: "s")  // through the bytes, as a resume reads it
    }

    func testRoundTripIsExact() throws {
        let (back, lines) = try RunState.decode(encoded(state()), path: "s", expected: expected)
        let original = state()
        XCTAssertEqual(lines, 6)
        XCTAssertEqual([back.epoch, back.step, back.batch, back.optimizerStep], [2, 7, 1, 7])
        XCTAssertEqual(back.sums.map(\.bitPattern), original.sums.map(\.bitPattern))
        XCTAssertEqual(back.first, original.first)
        XCTAssertEqual(back.second, original.second)
        XCTAssertEqual(back.labels, original.labels)
        XCTAssertEqual(back.snapshots.map(\.epoch), [0, 2])
        XCTAssertEqual(back.sections, original.sections)
        XCTAssertEqual(back.startScores, original.startScores)
        XCTAssertEqual(back.alpha, 3.5)
    }

    func testEveryCheckedFieldRefusesBadValues() {
        let cases: [(String, (inout Checkpoint) -> Void)] = [
            ("optimizer.second", { $0.sections["optimizer.second"]!.removeLast() }),
            ("optimizer.first", { $0.sections["optimizer.first"] = nil }),
            ("objective.target", { $0.sections["objective.target"]!.append(0) }),
            ("objective.target", { $0.sections["objective.target"]![0] = -1 }),
            ("labels", { $0.sections["labels"]![0] = 2 }),
            ("labels", { $0.sections["labels"]![0] = 0.5 }),
            ("labels", { $0.sections["labels"]!.removeLast() }),
            ("snapshot.0", { $0.sections["snapshot.0"]!.removeLast() }),
            ("epoch", { $0.metadata["epoch"] = "-1" }),
            ("epoch", { $0.metadata["epoch"] = "1e300" }),
            ("batch", { $0.metadata["batch"] = "3" }),
            ("step", { $0.metadata["step"] = "9223372036854775807" }),
            ("optimizer_step", { $0.metadata["optimizer_step"] = "8" }),
            ("metrics_lines", { $0.metadata["metrics_lines"] = "8" }),
            ("metrics_lines", { $0.metadata["metrics_lines"] = "-1" }),
            ("sums", { $0.metadata["sums"] = "0 0" }),
            ("sums", { $0.metadata["sums"] = "7ff8000000000000 0 0" }),
            ("alpha", { $0.metadata["alpha"] = "xyz" }),
            ("alpha", { $0.metadata["alpha"] = "ff800000" }),
            ("method", { $0.metadata["method"] = "idec" }),
        ]
        for (field, edit) in cases {
            XCTAssertThrowsError(try RunState.decode(encoded(state(), edit), path: "s", expected: expected), field) { error in
                XCTAssertTrue("\(error)".contains(field == "method" ? "idec" : field), "\(field): \(error)")
            }
        }
    }

    func testStepRangesFollowTheObjective() throws {
        let model = try Model(widths: [6, 4, 3], clusters: 2, maxRows: 4, communicator: SingleProcessCommunicator())
        let dec = StepRanges(model: model, reconstructs: false), idec = StepRanges(model: model, reconstructs: true)
        XCTAssertEqual(dec.zeroed, model.encoderSuffix)
        XCTAssertEqual(dec.reduced, dec.zeroed)
        XCTAssertEqual(dec.updated, model.autoencoder.encoderRange.lowerBound..<model.centreRange.upperBound)
        XCTAssertFalse(dec.updated.overlaps(model.autoencoder.decoderRange), "DEC leaves the decoder alone")
        XCTAssertEqual(idec.zeroed, model.all)
        XCTAssertEqual(idec.updated, 0..<model.centreRange.upperBound)
        XCTAssertTrue(idec.updated.contains(model.autoencoder.decoderRange.lowerBound))
    }
}
