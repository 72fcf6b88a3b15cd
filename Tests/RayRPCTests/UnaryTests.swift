import Foundation
import RayRPC
import RPCTestService
import Testing

@Suite(.timeLimit(.minutes(1))) struct UnaryTests {
    @Test func roundTrip() async throws {
        try await withTestServer { _, channel in
            let reply = try await channel.unary(TestService.echo, echoRequest("hello", payload: Data([1, 2, 3])))
            #expect(reply.text == "hello")
            #expect(reply.payload == Data([1, 2, 3]))
        }
    }

    @Test func sixtyFourConcurrentCalls() async throws {
        try await withTestServer { _, channel in
            let texts = try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<64 {
                    group.addTask { try await channel.unary(TestService.echo, echoRequest("call-\(i)", delayMs: 20)).text }
                }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(texts == Set((0..<64).map { "call-\($0)" }))
        }
    }

    @Test func fourMebibyteMessage() async throws {
        // A 4099-byte block (a prime, so no power-of-two stride repeats it) copied to 4 MiB: made with
        // memcpy rather than byte by byte, which under AddressSanitizer kept a pool thread for seconds.
        let block = Data((0..<4099).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        var payload = Data(capacity: 4 * 1024 * 1024)
        while payload.count + block.count <= 4 * 1024 * 1024 { payload.append(block) }
        payload.append(block.prefix(4 * 1024 * 1024 - payload.count))
        #expect(payload.count == 4 * 1024 * 1024)
        try await withTestServer { _, channel in
            let reply = try await channel.unary(TestService.echo, echoRequest(payload: payload))
            #expect(reply.payload == payload)
        }
    }

    @Test func metadataBothWays() async throws {
        try await withTestServer { _, channel in
            var metadata = Metadata()
            metadata.add("x-echo", "ray-42")
            let response = try await channel.unaryResponse(
                TestService.echo, echoRequest("m"), options: CallOptions(metadata: metadata))
            #expect(response.trailingMetadata["x-echoed"] == "ray-42")
        }
    }

    @Test func binaryMetadata() async throws {
        var router = RPCRouter()
        router.registerRaw(path: "/t.T/Bin") { _, context in
            let value = context.requestMetadata.values(forKey: "x-id-bin").first ?? []
            context.addTrailingMetadata("x-back-bin", bytes: value.reversed())
            return []
        }
        let server = try RPCServer(router: router)
        defer { Task { await server.shutdown(grace: .zero) } }
        let channel = try RPCChannel(host: "127.0.0.1", port: server.port)
        var metadata = Metadata()
        metadata.add("x-id-bin", bytes: [0, 255, 10, 13])
        let response = try await channel.rawUnary(path: "/t.T/Bin", [], options: CallOptions(metadata: metadata))
        #expect(response.trailingMetadata.values(forKey: "x-back-bin") == [[13, 10, 255, 0]])
    }

    @Test func unknownMethodIsUnimplemented() async throws {
        try await withTestServer { _, channel in
            let error = await rpcError { _ = try await channel.rawUnary(path: "/ray.rpc.testing.TestService/Nope", []) }
            #expect(error?.code == .unimplemented)
            #expect(error?.message.contains("Nope") == true)
        }
    }

    @Test func passedDeadlineIsDeadlineExceeded() async throws {
        try await withTestServer { _, channel in
            let start = ContinuousClock.now
            let error = await rpcError {
                _ = try await channel.unary(
                    TestService.echo, echoRequest(delayMs: 30_000), options: CallOptions(timeout: .milliseconds(100)))
            }
            #expect(error?.code == .deadlineExceeded)
            // Far below the handler's 30 s. (Bounds of 20 s and 25 s hid a stall while handlers needed
            // a thread of Swift's pool, which CPU-bound tests held for 5-7 s under AddressSanitizer.)
            #expect(ContinuousClock.now - start < .seconds(5))
        }
    }

    @Test func aHandlerRunningPastItsDeadlineIsCancelled() async throws {
        let probe = TestService.Probe()
        try await withTestServer(probe: probe) { _, channel in
            // A deadline the call reaches its handler well within: a call whose deadline passes before
            // that never reaches it (gRPC drops it), as a 100 ms deadline did once under
            // AddressSanitizer with both cores loaded. The call is made here, not in a task of its
            // own: a task of the test process can wait seconds for a pool thread that the suite's
            // CPU-bound tests hold, and its call's deadline with it.
            let error = await rpcError {
                _ = try await channel.unary(
                    TestService.echo, echoRequest(delayMs: 30_000), options: CallOptions(timeout: .seconds(2)))
            }
            #expect(error?.code == .deadlineExceeded)
            #expect(probe.started == 1, "the call reached its handler within its 2 s deadline")
            // The server learns of it too: the handler's sleep is cancelled (it would otherwise end
            // normally after 30 s and never count).
            try await eventually("the handler sees the deadline", timeout: .seconds(5)) { probe.cancelledHandlers == 1 }
        }
    }

    @Test func noServerIsUnavailable() async throws {
        // Not a port a server of ours just let go: a concurrent test's server took one once, and
        // answered.
        let (socket, port) = try portNobodyListensOn()
        defer { close(socket) }
        let channel = try RPCChannel(host: "127.0.0.1", port: port)
        let error = await rpcError {
            _ = try await channel.unary(TestService.echo, echoRequest(), options: CallOptions(timeout: .seconds(5)))
        }
        #expect(error?.code == .unavailable)
    }

    @Test func requestOverTheServerLimitIsResourceExhausted() async throws {
        var configuration = RPCServer.Configuration()
        configuration.maxReceiveMessageBytes = 1024 * 1024
        try await withTestServer(server: configuration) { _, channel in
            let error = await rpcError {
                _ = try await channel.unary(TestService.echo, echoRequest(payload: Data(count: 2 * 1024 * 1024)))
            }
            #expect(error?.code == .resourceExhausted)
            // The server is fine afterwards.
            let again = try await channel.unary(TestService.echo, echoRequest("ok"))
            #expect(again.text == "ok")
        }
    }

    @Test func replyOverTheClientLimitIsResourceExhausted() async throws {
        var configuration = RPCChannel.Configuration()
        configuration.maxReceiveMessageBytes = 64 * 1024
        try await withTestServer(channel: configuration) { _, channel in
            let error = await rpcError {
                _ = try await channel.unary(TestService.echo, echoRequest(payload: Data(count: 128 * 1024)))
            }
            #expect(error?.code == .resourceExhausted)
        }
    }

    @Test(arguments: [
        (RPCError.Code.notFound, "no such actor"),
        (.invalidArgument, "bad argument: ünïcode ✓"),
        (.failedPrecondition, ""),
        (.internalError, "10k"),
    ])
    func handlerErrorReachesTheClientExactly(code: RPCError.Code, message: String) async throws {
        let message = message == "10k" ? String(repeating: "x", count: 10_000) : message
        try await withTestServer { _, channel in
            var request = FailRequest()
            request.code = Int32(code.rawValue)
            request.message = message
            let error = await rpcError { _ = try await channel.unary(TestService.fail, request) }
            #expect(error?.code == code)
            #expect(error?.message == message)
            #expect(error?.metadata["x-failed"] == "yes")
        }
    }

    @Test func overlongErrorMessageIsTruncatedNotLost() async throws {
        try await withTestServer { _, channel in
            var request = FailRequest()
            request.code = Int32(RPCError.Code.aborted.rawValue)
            request.message = String(repeating: "y", count: 200_000)
            let error = await rpcError { _ = try await channel.unary(TestService.fail, request) }
            #expect(error?.code == .aborted)
            #expect(error?.message.hasPrefix(String(repeating: "y", count: 1000)) == true)
            #expect(error?.message.hasSuffix("(truncated from 200000 bytes)") == true)
        }
    }

    @Test func undecodableRequestIsInvalidArgument() async throws {
        try await withTestServer { _, channel in
            let error = await rpcError { _ = try await channel.rawUnary(path: TestService.echo.path, [0xFF, 0xFF, 0xFF]) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("EchoRequest") == true)
            let again = try await channel.unary(TestService.echo, echoRequest("still up"))
            #expect(again.text == "still up")
        }
    }

    @Test func invalidMetadataIsRejectedBeforeSending() async throws {
        try await withTestServer { _, channel in
            var metadata = Metadata()
            metadata.add("bad key", "v")
            let error = await rpcError {
                _ = try await channel.unary(TestService.echo, echoRequest(), options: CallOptions(metadata: metadata))
            }
            #expect(error?.code == .invalidArgument)
            var binaryAsText = Metadata()
            binaryAsText.add("x-text", bytes: [0, 1])
            let error2 = await rpcError {
                _ = try await channel.unary(TestService.echo, echoRequest(), options: CallOptions(metadata: binaryAsText))
            }
            #expect(error2?.code == .invalidArgument)
        }
    }

    @Test func invalidTrailingMetadataFromAHandlerIsInternal() async throws {
        var router = RPCRouter()
        router.registerRaw(path: "/t.T/BadTrailer") { _, context in
            context.addTrailingMetadata("Not Valid", "x")
            return []
        }
        let server = try RPCServer(router: router)
        let channel = try RPCChannel(host: "127.0.0.1", port: server.port)
        let error = await rpcError { _ = try await channel.rawUnary(path: "/t.T/BadTrailer", []) }
        #expect(error?.code == .internalError)
        await server.shutdown(grace: .zero)
    }

    @Test func cancellingTheCallerCancelsBothSides() async throws {
        let probe = TestService.Probe()
        try await withTestServer(probe: probe) { _, channel in
            let task = Task {
                try await channel.unary(TestService.echo, echoRequest(delayMs: 30_000))
            }
            try await eventually("the handler starts") { probe.started == 1 }
            let start = ContinuousClock.now
            task.cancel()
            let result = await task.result
            // Far below the handler's 30 s, with room for AddressSanitizer on 2 busy cores.
            #expect(ContinuousClock.now - start < .seconds(10))
            guard case .failure(let error as RPCError) = result else {
                Issue.record("expected a cancelled RPC, got \(result)")
                return
            }
            #expect(error.code == .cancelled)
            try await eventually("the server handler is cancelled") { probe.cancelledHandlers == 1 }
        }
    }
}
