import Foundation
import RayRPC
import RPCTestService
import Testing

@Suite(.timeLimit(.minutes(3))) struct StreamingTests {
    @Test func thousandServerStreamedMessages() async throws {
        try await withTestServer { _, channel in
            var request = StreamRequest()
            request.count = 1000
            request.messageBytes = 100
            let sequences = try await channel.serverStreaming(TestService.serverStream, request) { replies in
                var seen: [Int64] = []
                for try await reply in replies {
                    #expect(reply.payload.count == 100)
                    seen.append(reply.sequence)
                }
                return seen
            }
            #expect(sequences == (0..<1000).map { Int64($0) })
        }
    }

    @Test func thousandClientStreamedMessages() async throws {
        try await withTestServer { _, channel in
            let reply = try await channel.clientStreaming(TestService.clientStream) { writer in
                for i in 0..<1000 {
                    try await writer.write(echoRequest(payload: Data([UInt8(i % 256)])))
                }
            }
            #expect(reply.sequence == 1000)
            #expect(reply.payload == Data((0..<1000).map { UInt8($0 % 256) }))
        }
    }

    @Test func bidirectionalAnswersEachMessageInOrder() async throws {
        try await withTestServer { _, channel in
            // A hang guard, not a speed check: 1,000 round trips took over 30 s under AddressSanitizer
            // with the whole suite on two slow cores.
            let texts = try await bidiPingPong(channel, count: 1000, options: CallOptions(timeout: .seconds(120)))
            #expect(texts == (0..<1000).map { "m\($0)" })
        }
    }

    @Test func largeStreamedMessages() async throws {
        try await withTestServer { _, channel in
            var request = StreamRequest()
            request.count = 64
            request.messageBytes = 1024 * 1024
            let total = try await channel.serverStreaming(TestService.serverStream, request) { replies in
                try await replies.reduce(0) { $0 + $1.payload.count }
            }
            #expect(total == 64 * 1024 * 1024)
        }
    }

    @Test func slowConsumerPushesBackOnTheWriter() async throws {
        let probe = TestService.Probe()
        try await withTestServer(probe: probe) { _, channel in
            var request = StreamRequest()
            request.count = 200
            request.messageBytes = 1024 * 1024
            try await channel.serverStreaming(TestService.serverStream, request) { replies in
                var iterator = replies.makeAsyncIterator()
                _ = try await iterator.next()
                // Stop reading: the writer must stall long before 200 MiB are sent.
                try await Task.sleep(for: .milliseconds(500))
                let writtenWhileStalled = probe.written
                #expect(writtenWhileStalled < 64, "the server wrote \(writtenWhileStalled) MiB to a stalled reader")
                var count = 1
                while try await iterator.next() != nil { count += 1 }
                #expect(count == 200)
            }
        }
    }

    @Test func leavingTheStreamEarlyCancelsTheServer() async throws {
        let probe = TestService.Probe()
        try await withTestServer(probe: probe) { _, channel in
            var request = StreamRequest()
            request.count = 1_000_000
            request.messageBytes = 10
            let firstFew = try await channel.serverStreaming(TestService.serverStream, request) { replies in
                var seen = 0
                for try await _ in replies {
                    seen += 1
                    if seen == 5 { break }
                }
                return seen
            }
            #expect(firstFew == 5)
            // The handler stops (its write fails) instead of writing a million messages.
            let before = probe.written
            try await Task.sleep(for: .milliseconds(300))
            #expect(probe.written - before < 10_000)
            #expect(probe.written < 1_000_000)
        }
    }

    @Test func aServerEndingTheCallStopsTheClientsWrites() async throws {
        var router = RPCRouter()
        router.registerClientStreaming(TestService.clientStream) { requests, _ in
            var seen = 0
            for try await _ in requests {
                seen += 1
                if seen == 5 { break }
            }
            throw RPCError(code: .outOfRange, message: "five is enough")
        }
        let server = try RPCServer(router: router)
        let channel = try RPCChannel(host: "127.0.0.1", port: server.port)
        let payload = Data(count: 1000)
        var written = 0
        let error = await rpcError {
            _ = try await channel.clientStreaming(TestService.clientStream) { writer in
                // Without a deadline of its own: the writes must fail once the server has answered.
                for _ in 0..<200_000 {
                    try await writer.write(echoRequest(payload: payload))
                    written += 1
                }
            }
        }
        #expect(error?.code == .outOfRange)
        #expect(error?.message == "five is enough")
        // Writes are accepted until the 4 MiB window is full (~4,200 of these, few enough to make
        // quickly under AddressSanitizer); a client that never noticed the answer would write them all.
        #expect(written < 50_000, "the client wrote \(written) messages after the server had answered")
        await server.shutdown(grace: .zero)
    }

    @Test func streamErrorReachesTheIterator() async throws {
        var router = RPCRouter()
        router.registerServerStreaming(TestService.serverStream) { _, writer, _ in
            try await writer.write(EchoReply())
            throw RPCError(code: .dataLoss, message: "chunk 2 is gone")
        }
        let server = try RPCServer(router: router)
        let channel = try RPCChannel(host: "127.0.0.1", port: server.port)
        var received = 0
        let error = await rpcError {
            try await channel.serverStreaming(TestService.serverStream, StreamRequest()) { replies in
                for try await _ in replies { received += 1 }
            }
        }
        #expect(received == 1)
        #expect(error?.code == .dataLoss)
        #expect(error?.message == "chunk 2 is gone")
        await server.shutdown(grace: .zero)
    }

    @Test func streamDeadline() async throws {
        try await withTestServer { _, channel in
            var request = StreamRequest()
            request.count = 1_000_000
            request.messageBytes = 10
            let error = await rpcError {
                try await channel.serverStreaming(
                    TestService.serverStream, request, options: CallOptions(timeout: .milliseconds(200))
                ) { replies in
                    for try await _ in replies { try await Task.sleep(for: .milliseconds(1)) }
                }
            }
            #expect(error?.code == .deadlineExceeded)
        }
    }
}
