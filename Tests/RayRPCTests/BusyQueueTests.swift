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

    private static func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw RPCError(code: .deadlineExceeded, message: "waited 10 s") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test func aBlockedQueueThreadDoesNotHoldUpOtherCalls() async throws {
        let block = Block()
        let (server, channel) = try Self.server(block)
        defer { Task { await server.shutdown(grace: .seconds(5)) } }
        defer { block.release() }  // runs first, also when the test fails early
        let blocked = Task { try await channel.rawUnary(path: "/t.T/Block", []) }
        try await Self.waitUntil { block.hasStarted }
        // Without a stand-in these would wait for the release, which comes only after them: each has
        // a deadline instead (far above the ~50 ms a stand-in takes to start, for ASan on busy cores).
        for i in 0..<20 {
            let reply = try await channel.unary(TestService.echo, echoRequest("e\(i)"), options: CallOptions(timeout: .seconds(20)))
            #expect(reply.text == "e\(i)")
        }
        // All answered while the blocking handler still holds the queue's thread.
        #expect(!block.hasFinished)
        block.release()
        _ = try await blocked.value
        #expect(block.hasFinished)
        // And the queue's own thread serves again afterwards.
        #expect(try await channel.unary(TestService.echo, echoRequest("after")).text == "after")
    }

    @Test func aStreamServedMeanwhileKeepsItsOrder() async throws {
        let block = Block()
        let (server, channel) = try Self.server(block)
        defer { Task { await server.shutdown(grace: .seconds(5)) } }
        defer { block.release() }  // runs first, also when the test fails early
        let blocked = Task { try await channel.rawUnary(path: "/t.T/Block", []) }
        try await Self.waitUntil { block.hasStarted }
        let texts = try await channel.bidirectional(TestService.bidi, options: CallOptions(timeout: .seconds(20))) { writer, replies in
            var texts: [String] = []
            var iterator = replies.makeAsyncIterator()
            for i in 0..<300 {
                try await writer.write(echoRequest("m\(i)"))
                let reply = try #require(try await iterator.next())
                #expect(reply.sequence == Int64(i))
                texts.append(reply.text)
            }
            writer.finish()
            #expect(try await iterator.next() == nil)
            return texts
        }
        #expect(texts == (0..<300).map { "m\($0)" })
        #expect(!block.hasFinished)
        block.release()
        _ = try await blocked.value
    }
}
