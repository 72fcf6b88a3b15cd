import Foundation
import RayRPC
import RPCTestService
import Testing

/// Every call's memory is returned, whichever way the call ended.
@Suite(.timeLimit(.minutes(1))) struct LeakTests {
    @Test func everyCallIsFreedHoweverItEnded() async throws {
        let probe = TestService.Probe()
        let server = try RPCServer(router: TestService.router(probe: probe))
        let channel = try RPCChannel(host: "127.0.0.1", port: server.port)

        // Succeeded, failed, unknown method, deadline, cancelled.
        _ = try await channel.unary(TestService.echo, echoRequest("ok"))
        var fail = FailRequest()
        fail.code = 5
        _ = await rpcError { _ = try await channel.unary(TestService.fail, fail) }
        _ = await rpcError { _ = try await channel.rawUnary(path: "/x.Y/Z", []) }
        _ = await rpcError {
            _ = try await channel.unary(TestService.echo, echoRequest(delayMs: 5_000),
                                        options: CallOptions(timeout: .milliseconds(50)))
        }
        // Counted from here: the deadline's handler may not have run (gRPC drops a call whose deadline
        // passes before it reaches its handler, as on a loaded machine).
        let startedBefore = probe.started
        let cancelled = Task { try await channel.unary(TestService.echo, echoRequest(delayMs: 5_000)) }
        try await eventually("the handler to cancel runs") { probe.started > startedBefore }
        cancelled.cancel()
        _ = await cancelled.result

        // Streams: read to the end, left early, failed by deadline, client and bidi streaming.
        var request = StreamRequest()
        request.count = 100
        request.messageBytes = 10
        _ = try await channel.serverStreaming(TestService.serverStream, request) { try await $0.reduce(0) { n, _ in n + 1 } }
        request.count = 100_000
        _ = try await channel.serverStreaming(TestService.serverStream, request) { replies in
            for try await _ in replies { break }
        }
        _ = await rpcError {
            try await channel.serverStreaming(TestService.serverStream, request,
                                              options: CallOptions(timeout: .milliseconds(100))) { replies in
                for try await _ in replies { try await Task.sleep(for: .milliseconds(5)) }
            }
        }
        _ = try await channel.clientStreaming(TestService.clientStream) { writer in
            for _ in 0..<10 { try await writer.write(echoRequest("c")) }
        }
        _ = try await channel.bidirectional(TestService.bidi) { writer, replies in
            try await writer.write(echoRequest("b"))
            writer.finish()
            return try await replies.reduce(0) { n, _ in n + 1 }
        }

        try await eventually("the server frees its calls (\(server._liveCalls) left)") { server._liveCalls == 0 }
        try await eventually("the channel frees its calls (\(channel._liveCalls) left)") { channel._liveCalls == 0 }

        // Calls still running when the server shuts down are freed too.
        let startedSoFar = probe.started
        let pending = (0..<10).map { _ in
            Task { try await channel.unary(TestService.echo, echoRequest(delayMs: 10_000)) }
        }
        try await eventually("10 more handlers run") { probe.started == startedSoFar + 10 }
        await server.shutdown(grace: .zero)
        for call in pending { _ = await call.result }
        #expect(server._liveCalls == 0)
        try await eventually("the channel frees the shut-down calls") { channel._liveCalls == 0 }
    }
}
