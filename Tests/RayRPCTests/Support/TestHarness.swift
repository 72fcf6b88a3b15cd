import Foundation
import RayRPC
import RPCTestService
import Testing

/// Runs `body` against a fresh test-service server on 127.0.0.1:0 and a channel to it, shutting both
/// down afterwards even when `body` throws.
func withTestServer<R>(
    probe: TestService.Probe = TestService.Probe(),
    server serverConfiguration: RPCServer.Configuration = RPCServer.Configuration(),
    channel channelConfiguration: RPCChannel.Configuration = RPCChannel.Configuration(),
    _ body: (RPCServer, RPCChannel) async throws -> R
) async throws -> R {
    let server = try RPCServer(router: TestService.router(probe: probe), configuration: serverConfiguration)
    let channel = try RPCChannel(host: "127.0.0.1", port: server.port, configuration: channelConfiguration)
    do {
        let result = try await body(server, channel)
        await server.shutdown(grace: .seconds(1))
        return result
    } catch {
        await server.shutdown(grace: .zero)
        throw error
    }
}

/// A wait that ran out of time.
struct WaitTimedOut: Error, CustomStringConvertible {
    let what: String
    let timeout: Duration
    var description: String { "timed out after \(timeout) waiting for: \(what)" }
}

/// Waits until `condition` holds; throws `WaitTimedOut` naming `what` after `timeout`.
func eventually(_ what: @autoclosure () -> String, timeout: Duration = .seconds(10), _ condition: () -> Bool)
    async throws
{
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now >= deadline { throw WaitTimedOut(what: what(), timeout: timeout) }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// The RPCError a call threw, or nil if it succeeded.
func rpcError(_ body: () async throws -> Void) async -> RPCError? {
    do {
        try await body()
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        Issue.record("expected an RPCError, got \(type(of: error)): \(error)")
        return nil
    }
}

func echoRequest(_ text: String = "", payload: Data = Data(), delayMs: Int32 = 0) -> EchoRequest {
    var request = EchoRequest()
    request.text = text
    request.payload = payload
    request.delayMs = delayMs
    return request
}

/// A ping-pong on the test service's Bidi method: sends `count` messages, each after the reply to the
/// one before arrived, checks each reply's number, and returns the texts echoed.
func bidiPingPong(_ channel: RPCChannel, count: Int, options: CallOptions = CallOptions()) async throws -> [String] {
    try await channel.bidirectional(TestService.bidi, options: options) { writer, replies in
        var texts: [String] = []
        var iterator = replies.makeAsyncIterator()
        for i in 0..<count {
            try await writer.write(echoRequest("m\(i)"))
            let reply = try #require(try await iterator.next())
            #expect(reply.sequence == Int64(i))
            texts.append(reply.text)
        }
        writer.finish()
        #expect(try await iterator.next() == nil)
        return texts
    }
}

/// A loopback port nothing listens on for as long as the returned socket stays open: bound, never
/// listening, without SO_REUSEPORT (so no server of a concurrent test can take it, as one took a
/// port a test's server had just let go). Connecting to it is refused. Close the socket after.
func portNobodyListensOn() throws -> (socket: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw SocketFailure(message: "socket: errno \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else {
        close(fd)
        throw SocketFailure(message: "bind 127.0.0.1:0: errno \(errno)")
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

struct SocketFailure: Error {
    let message: String
}
