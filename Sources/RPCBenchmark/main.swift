// rpc-benchmark: throughput of the RPC layer (shim + RayRPC) on this machine, client and server in one
// process over 127.0.0.1, as the prototype measured it. Prints one line per figure, `name: value unit`.
//
//   .build/release/rpc-benchmark [--seconds S] [--repeats N] [--completion-queues N] [--json FILE] [--only NAME]
//   .build/release/rpc-benchmark --serve & .build/release/rpc-benchmark --target 127.0.0.1:PORT   (two processes)
//
// Each figure is the median of N runs of S seconds (default 5 x 1 s) after a warm-up, because a shared
// 2-core machine swings by tens of percent from one second to the next. MB/s counts payload bytes
// (10^6) carried one way.
import Foundation
import RayRPC
import RPCTestService

struct Options {
    var seconds = 1.0
    var repeats = 5
    var completionQueues = 1
    var jsonPath: String?
    var only: String?
    /// Serve the test service and print its port, for a client in another process (`--target`).
    var serve = false
    /// Measure against a server in another process (`host:port` of `rpc-benchmark --serve`).
    var target: String?

    init(_ arguments: [String]) {
        var it = arguments.dropFirst().makeIterator()
        while let arg = it.next() {
            switch arg {
            case "--seconds": seconds = Double(it.next() ?? "") ?? seconds
            case "--repeats": repeats = max(1, Int(it.next() ?? "") ?? repeats)
            case "--completion-queues": completionQueues = max(1, Int(it.next() ?? "") ?? completionQueues)
            case "--json": jsonPath = it.next()
            case "--only": only = it.next()
            case "--serve": serve = true
            case "--target": target = it.next()
            case "-h", "--help":
                print("usage: rpc-benchmark [--seconds S] [--repeats N] [--completion-queues N] [--json FILE] [--only NAME] [--serve | --target HOST:PORT]")
                exit(0)
            default:
                FileHandle.standardError.write(Data("unknown argument \(arg)\n".utf8))
                exit(2)
            }
        }
    }
}

/// The median over `options.repeats` runs of `callsPerSecondOnce`.
func callsPerSecond(concurrency: Int, seconds: Double, _ call: @escaping @Sendable () async throws -> Void) async throws -> Double {
    var runs: [Double] = []
    for _ in 0..<options.repeats {
        runs.append(try await callsPerSecondOnce(concurrency: concurrency, seconds: seconds, call))
    }
    runs.sort()
    return runs[runs.count / 2]
}

/// Runs `concurrency` loops of `call` for `seconds` after a short warm-up; returns completed calls/s.
func callsPerSecondOnce(concurrency: Int, seconds: Double, _ call: @escaping @Sendable () async throws -> Void) async throws -> Double {
    let warmUpEnd = ContinuousClock.now + .milliseconds(300)
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<concurrency {
            group.addTask { while ContinuousClock.now < warmUpEnd { try await call() } }
        }
        try await group.waitForAll()
    }
    let start = ContinuousClock.now
    let end = start + .milliseconds(Int(seconds * 1000))
    let total = try await withThrowingTaskGroup(of: Int.self) { group in
        for _ in 0..<concurrency {
            group.addTask {
                var n = 0
                while ContinuousClock.now < end {
                    try await call()
                    n += 1
                }
                return n
            }
        }
        return try await group.reduce(0, +)
    }
    let elapsed = ContinuousClock.now - start
    return Double(total) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

let options = Options(CommandLine.arguments)
var serverConfiguration = RPCServer.Configuration()
serverConfiguration.completionQueues = options.completionQueues
let server = try RPCServer(router: TestService.router(), configuration: serverConfiguration)
if options.serve {
    print("serving on 127.0.0.1:\(server.port)")
    fflush(nil)
    while true { try await Task.sleep(for: .seconds(3600)) }
}
let channel = try options.target.map { try RPCChannel(target: $0) } ?? RPCChannel(host: "127.0.0.1", port: server.port)
let mib = 1024 * 1024
let small = echoRequestWith(bytes: 100)
let large = echoRequestWith(bytes: mib)

func echoRequestWith(bytes: Int) -> EchoRequest {
    var request = EchoRequest()
    request.payload = Data(repeating: 7, count: bytes)
    return request
}

var results: [(String, Double, String)] = []
@MainActor func report(_ name: String, _ value: Double, _ unit: String) {
    results.append((name, value, unit))
    print("\(name): \(String(format: "%.0f", value)) \(unit)")
    fflush(nil)
}

let s = options.seconds
func wanted(_ name: String) -> Bool { options.only == nil || options.only == name }
if wanted("rpc_unary_100b_sequential") { report("rpc_unary_100b_sequential", try await callsPerSecond(concurrency: 1, seconds: s) {
    _ = try await channel.unary(TestService.echo, small)
}, "calls/s") }
if wanted("rpc_bidi_100b_ping_pong") {
    report("rpc_bidi_100b_ping_pong", try await bidiPingPong(channel, small, seconds: s, repeats: options.repeats), "round trips/s")
}
if wanted("rpc_unary_100b_64_in_flight") { report("rpc_unary_100b_64_in_flight", try await callsPerSecond(concurrency: 64, seconds: s) {
    _ = try await channel.unary(TestService.echo, small)
}, "calls/s") }
if wanted("rpc_unary_1mib_sequential") { report("rpc_unary_1mib_sequential", try await callsPerSecond(concurrency: 1, seconds: s) {
    _ = try await channel.unary(TestService.echo, large)
} * Double(mib) / 1e6, "MB/s") }
if wanted("rpc_unary_1mib_64_in_flight") { report("rpc_unary_1mib_64_in_flight", try await callsPerSecond(concurrency: 64, seconds: s) {
    _ = try await channel.unary(TestService.echo, large)
} * Double(mib) / 1e6, "MB/s") }
if wanted("rpc_stream_1mib_chunks") {
let streamRequest = {
    var request = StreamRequest()
    request.count = 256
    request.messageBytes = Int32(mib)
    return request
}()
let streamsPerSecond = try await callsPerSecond(concurrency: 1, seconds: s) {
    let count = try await channel.serverStreaming(TestService.serverStream, streamRequest) { replies in
        try await replies.reduce(0) { n, reply in n + reply.payload.count }
    }
    precondition(count == 256 * mib)
}
report("rpc_stream_1mib_chunks", streamsPerSecond * 256 * Double(mib) / 1e6, "MB/s")
}

await server.shutdown(grace: .seconds(1))

if let path = options.jsonPath {
    let object = Dictionary(uniqueKeysWithValues: results.map { ($0.0, $0.1) })
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    try data.write(to: URL(fileURLWithPath: path))
}

/// One long-lived stream, one message out and its answer back at a time: the round trip a unary call
/// costs without setting up a call each time. The median of `repeats` runs after a warm-up run.
func bidiPingPong(_ channel: RPCChannel, _ message: EchoRequest, seconds: Double, repeats: Int) async throws -> Double {
    try await channel.bidirectional(TestService.bidi) { writer, replies in
        var iterator = replies.makeAsyncIterator()
        var runs: [Double] = []
        for run in 0...repeats {
            let start = ContinuousClock.now
            var n = 0
            while ContinuousClock.now - start < .milliseconds(Int(seconds * 1000)) {
                try await writer.write(message)
                guard try await iterator.next() != nil else { throw RPCError(code: .internalError, message: "stream ended") }
                n += 1
            }
            if run > 0 { runs.append(Double(n) / (Double((ContinuousClock.now - start) / .microseconds(1)) / 1e6)) }
        }
        writer.finish()
        return runs.sorted()[runs.count / 2]
    }
}
