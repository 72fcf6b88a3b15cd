import Foundation
import RayRPC
import RPCTestService
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A handler that keeps its completion-queue thread (synchronous work, as a CPU-bound task or actor
/// method does) must not hold up the server's other calls: a stand-in thread polls the queue meanwhile.
@Suite(.timeLimit(.minutes(2))) struct BusyQueueTests {
    private final class Block: Sendable {
        let started = Atomic<Int>(0)
        let released = Atomic<Int>(0)
        let finished = Atomic<Int>(0)
        var hasStarted: Bool { started.load(ordering: .sequentiallyConsistent) > 0 }
        var hasFinished: Bool { finished.load(ordering: .sequentiallyConsistent) > 0 }
        func release() { released.store(1, ordering: .sequentiallyConsistent) }
    }

    /// The test service plus `/t.T/Block`, which holds its thread without suspending (as synchronous
    /// work does) until the test releases it, or 40 s passed.
    private static func server(_ block: Block) throws -> (RPCServer, RPCChannel) {
        var router = TestService.router()
        router.registerRaw(path: "/t.T/Block") { _, _ in
            block.started.add(1, ordering: .sequentiallyConsistent)
            let end = ContinuousClock.now + .seconds(40)
            while block.released.load(ordering: .sequentiallyConsistent) == 0 && ContinuousClock.now < end {
                usleep(1000)
            }
            block.finished.add(1, ordering: .sequentiallyConsistent)
            return []
        }
        let server = try RPCServer(router: router)
        return (server, try RPCChannel(host: "127.0.0.1", port: server.port))
    }

    /// Runs `body` while a call's handler holds the server's only queue thread; checks that the
    /// handler still held it when `body` was done, then releases it.
    private static func withBlockedQueue(_ body: (RPCChannel) async throws -> Void) async throws {
        let block = Block()
        let (server, channel) = try Self.server(block)
        defer { Task { await server.shutdown(grace: .seconds(5)) } }
        defer { block.release() }  // runs first, also when the test fails early
        let blocked = Task { try await channel.rawUnary(path: "/t.T/Block", []) }
        try await eventually("the blocking handler started") { block.hasStarted }
        try await body(channel)
        #expect(!block.hasFinished)
        block.release()
        _ = try await blocked.value
        #expect(block.hasFinished)
        // The queue's own thread serves again afterwards.
        #expect(try await channel.unary(TestService.echo, echoRequest("after")).text == "after")
    }

    // Without a stand-in these calls would wait for the release, which comes only after them: each
    // has a deadline instead (far above the ~50 ms a stand-in takes to start, for ASan on busy cores).

    @Test func aBlockedQueueThreadDoesNotHoldUpOtherCalls() async throws {
        try await Self.withBlockedQueue { channel in
            for i in 0..<20 {
                let reply = try await channel.unary(
                    TestService.echo, echoRequest("e\(i)"), options: CallOptions(timeout: .seconds(20)))
                #expect(reply.text == "e\(i)")
            }
        }
    }

    @Test func aStreamServedMeanwhileKeepsItsOrder() async throws {
        try await Self.withBlockedQueue { channel in
            // (300 round trips took over 20 s under AddressSanitizer with the whole suite on two slow cores.)
            let texts = try await bidiPingPong(channel, count: 300, options: CallOptions(timeout: .seconds(90)))
            #expect(texts == (0..<300).map { "m\($0)" })
        }
    }
}
