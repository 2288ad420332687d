// The distributed core in one process: the in-process world (threads as ranks) runs the collectives and every
// gradient transport against the serial results, bit for bit (its reductions add in rank order).
@testable import Collective
@testable import CollectiveMPI
@testable import Clustering
@testable import Datasets
@testable import NN
@testable import Report
@testable import Tensor
@testable import Training
import Foundation
import XCTest

final class TransportTests: XCTestCase {
    func testCollectivesOfTheInProcessWorld() throws {
        for ranks in [1, 2, 3, 5] {
            let failures = try InProcessWorld.run(ranks: ranks) { try Diagnostics.checkCollectives($0) }
            XCTAssertEqual(failures.flatMap { $0 }, [], "\(ranks) ranks")
        }
    }

    func testEveryTransportSumsInRankOrder() throws {
        for ranks in [2, 3, 4] {
            let kinds = try InProcessWorld.run(ranks: ranks) { c -> [String] in
                var built: [String] = []
                for kind in [TransportKind.sharedMemory, .thread, .blocking] {
                    if let transport = try GradientTransports.make(kind, c, count: 7) { built.append(transport.kind.rawValue) }
                }
                return built
            }
            XCTAssertEqual(kinds[0], ["shared memory", "reduction thread", "one blocking allreduce"], "\(ranks) ranks")
            let failures = try InProcessWorld.run(ranks: ranks) { try TransportCheck.run($0, exactOrder: true) }
            XCTAssertEqual(failures.flatMap { $0 }, [], "\(ranks) ranks")
        }
    }

    /// A check that cannot pass by accident: a transport that reduces nothing leaves every covered element wrong.
    func testTheCheckCatchesAMissingReduction() throws {
        let failures = try InProcessWorld.run(ranks: 2) { c in
            try TransportCheck.check(LocalGradients(count: 5003), c, orderFixed: true)
        }
        XCTAssertEqual(failures[0].count, 3)
        XCTAssertEqual(failures[1].count, 3)
    }

    func testTheDefaultChoice() throws {
        let kinds = try InProcessWorld.run(ranks: 2) { c -> [TransportKind] in
            let overlapped = try GradientTransports.make(c, count: 10, overlap: true).kind
            let blocking = try GradientTransports.make(c, count: 10, overlap: false).kind
            c.allowsSharedMemory = false
            let withoutSharedMemory = try GradientTransports.make(c, count: 10, overlap: true).kind
            c.allowsThread = false
            let withNeither = try GradientTransports.make(c, count: 10, overlap: true).kind
            c.allowsSharedMemory = true
            c.prefersReductionThread = true
            c.allowsThread = true
            let asked = try GradientTransports.make(c, count: 10, overlap: true).kind
            return [overlapped, blocking, withoutSharedMemory, withNeither, asked]
        }
        XCTAssertEqual(kinds[0], [.sharedMemory, .blocking, .thread, .blocking, .thread])
        XCTAssertEqual(try GradientTransports.make(SingleProcessCommunicator(), count: 3, overlap: true).kind, .single)
    }

    /// A rank of the host that stops taking part ends the other's wait with an error, not a hang.
    func testSharedMemoryWaitEndsWhenAPeerIsGone() throws {
        let outcomes = try InProcessWorld.run(ranks: 2) { c -> String in
            let transport = try GradientTransports.make(.sharedMemory, c, count: 100) as! SharedMemoryTransport
            transport.timeout = 0.3
            guard c.rank == 0 else { return "gone" }  // rank 1 never finishes a step
            transport.beginStep()
            try transport.bucketReady(0..<100)
            do {
                try transport.finish()
                return "finished"
            } catch let error as PeerTimeout {
                return error.description
            }
        }
        XCTAssertTrue(outcomes[0].hasPrefix("local rank 1 of this host did not complete bucket 0"), outcomes[0])
    }
}
