import Foundation
import RayRPC
import RPCTestService
import Testing

@Suite(.timeLimit(.minutes(1))) struct LifecycleTests {
    @Test func shutdownWithHundredCallsInFlightEndsEveryCall() async throws {
        let probe = TestService.Probe()
        let server = try RPCServer(router: TestService.router(probe: probe))
        let channel = try RPCChannel(host: "127.0.0.1", port: server.port)
        let calls = (0..<100).map { i in
            Task { () -> Result<EchoReply, RPCError> in
                do {
                    return .success(try await channel.unary(TestService.echo, echoRequest("\(i)", delayMs: 20_000)))
                } catch let error as RPCError {
                    return .failure(error)
                } catch {
                    return .failure(RPCError(code: .unknown, message: "not an RPCError: \(error)"))
                }
            }
        }
        try await eventually("100 handlers running") { probe.started == 100 }
        let start = ContinuousClock.now
        await server.shutdown(grace: .milliseconds(100))
        var codes: [RPCError.Code] = []
        for call in calls {
            if case .failure(let error) = await call.value { codes.append(error.code) }
        }
        #expect(ContinuousClock.now - start < .seconds(10), "far below the handlers' 20 s")
        #expect(codes.count == 100, "every call ends with an error status")
        #expect(Set(codes).isSubset(of: [.unavailable, .cancelled]), "codes: \(Set(codes))")
        try await eventually("every handler sees its cancellation") { probe.cancelledHandlers == 100 }
    }

    @Test func gracefulShutdownLetsCallsFinish() async throws {
        let probe = TestService.Probe()
        let server = try RPCServer(router: TestService.router(probe: probe))
        let channel = try RPCChannel(host: "127.0.0.1", port: server.port)
        let calls = (0..<20).map { i in
            Task { try await channel.unary(TestService.echo, echoRequest("\(i)", delayMs: 300)).text }
        }
        try await eventually("20 handlers running") { probe.started == 20 }
        await server.shutdown(grace: .seconds(10))
        for (i, call) in calls.enumerated() {
            #expect(try await call.value == "\(i)")
        }
        // New calls are refused after shutdown.
        let error = await rpcError { _ = try await channel.unary(TestService.echo, echoRequest()) }
        #expect(error?.code == .unavailable)
    }

    @Test func clientReconnectsWhenTheServerComesBackOnTheSamePort() async throws {
        let first = try RPCServer(router: TestService.router())
        let port = first.port
        let channel = try RPCChannel(host: "127.0.0.1", port: port)
        #expect(try await channel.unary(TestService.echo, echoRequest("one")).text == "one")
        await first.shutdown(grace: .zero)
        let down = await rpcError { _ = try await channel.unary(TestService.echo, echoRequest()) }
        #expect(down?.code == .unavailable)

        let second = try RPCServer(port: port, router: TestService.router())
        #expect(second.port == port)
        let reply = try await channel.unary(
            TestService.echo, echoRequest("two"), options: CallOptions(timeout: .seconds(10), waitForReady: true))
        #expect(reply.text == "two")
        await second.shutdown(grace: .zero)
    }

    @Test func bindingAPortInUseFails() async throws {
        let first = try RPCServer(router: RPCRouter())
        #expect(throws: RPCError.self) { _ = try RPCServer(port: first.port, router: RPCRouter()) }
        await first.shutdown(grace: .zero)
    }

    @Test func aLocalSocketServesPeersOnThisMachineAndIsExclusive() async throws {
        let name = "swift-ray-test-\(UUID().uuidString)"
        var configuration = RPCServer.Configuration()
        configuration.localSocketName = name
        let server = try RPCServer(router: TestService.router(), configuration: configuration)
        // The same service over TCP and over the abstract socket.
        let overTCP = try RPCChannel(host: "127.0.0.1", port: server.port)
        let overSocket = try RPCChannel(target: "unix-abstract:\(name)")
        #expect(try await overTCP.unary(TestService.echo, echoRequest("tcp")).text == "tcp")
        #expect(try await overSocket.unary(TestService.echo, echoRequest("local")).text == "local")
        // A second server cannot take the name.
        do {
            _ = try RPCServer(router: RPCRouter(), configuration: configuration)
            Issue.record("two servers on one abstract socket")
        } catch {
            #expect(error.message.contains(name), "\(error)")
        }
        await server.shutdown(grace: .zero)
    }

    @Test func droppingAServerWithoutShutdownEndsItsCalls() async throws {
        let probe = TestService.Probe()
        var server: RPCServer? = try RPCServer(router: TestService.router(probe: probe))
        let channel = try RPCChannel(host: "127.0.0.1", port: server!.port)
        let call = Task { try await channel.unary(TestService.echo, echoRequest(delayMs: 20_000)) }
        try await eventually("the handler runs") { probe.started == 1 }
        server = nil
        let result = await call.result
        guard case .failure(let error as RPCError) = result else {
            Issue.record("expected the call to fail, got \(result)")
            return
        }
        #expect([.unavailable, .cancelled].contains(error.code))
    }

    @Test func droppingTheChannelDuringAStreamIsSafe() async throws {
        try await withTestServer { server, _ in
            var channel: RPCChannel? = try RPCChannel(host: "127.0.0.1", port: server.port)
            var request = StreamRequest()
            request.count = 50
            request.messageBytes = 1000
            let count = try await channel!.serverStreaming(TestService.serverStream, request) { replies in
                channel = nil
                return try await replies.reduce(0) { n, _ in n + 1 }
            }
            #expect(count == 50)
        }
    }
}
