// rpc-demo: what `make demo` runs until Ray Core lands. Starts an RPC server on 127.0.0.1 (port 0), a
// client channel to it, and prints a unary round trip, a streamed reply, and an error status.
import Foundation
import RayRPC
import RPCTestService

let server = try RPCServer(router: TestService.router())
print("server listening on 127.0.0.1:\(server.port)")
let channel = try RPCChannel(host: "127.0.0.1", port: server.port)

var request = EchoRequest()
request.text = "hello from swift-ray"
let start = ContinuousClock.now
let reply = try await channel.unary(TestService.echo, request)
print("unary round trip: \"\(reply.text)\" in \(ContinuousClock.now - start)")

var streamRequest = StreamRequest()
streamRequest.count = 5
streamRequest.messageBytes = 1024
let sequence = try await channel.serverStreaming(TestService.serverStream, streamRequest) { replies in
    var sequence: [Int64] = []
    for try await reply in replies { sequence.append(reply.sequence) }
    return sequence
}
print("server stream: \(sequence.count) replies, sequence \(sequence)")

var fail = FailRequest()
fail.code = Int32(RPCError.Code.notFound.rawValue)
fail.message = "no such actor"
do {
    _ = try await channel.unary(TestService.fail, fail)
} catch {
    print("error status: \(error)")  // typed: always an RPCError
}

await server.shutdown(grace: .seconds(1))
print("server shut down")
