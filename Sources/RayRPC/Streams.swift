import SwiftProtobuf

/// Where a stream's outbound messages go (a server call or a client call).
protocol StreamSink: Sendable {
    func write(bytes: [UInt8]) async throws
    /// No more messages: a client half-closes; a server call ends when its handler returns.
    func writesDone()
}

extension StreamSink {
    func writesDone() {}
}

/// The messages a peer sends on a stream, as an `AsyncSequence`. It ends when the peer half-closes (on a
/// server) or the call ends with status OK (on a client); otherwise it throws the call's `RPCError`.
/// Messages are read ahead only a few at a time, so a consumer that stops iterating pushes back on the
/// sender through gRPC's flow control.
public struct RPCInbound<Message: SwiftProtobuf.Message>: AsyncSequence, Sendable {
    public typealias Element = Message
    let buffer: InboundBuffer

    public struct AsyncIterator: AsyncIteratorProtocol {
        let buffer: InboundBuffer
        public mutating func next() async throws -> Message? {
            guard let bytes = try await buffer.next() else { return nil }
            return try Message._decode(bytes)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: buffer) }
}

/// Writes messages to a stream. `write` waits while too many bytes are queued (flow control) and throws
/// once the call is over.
public struct RPCWriter<Message: SwiftProtobuf.Message>: Sendable {
    let sink: any StreamSink

    public func write(_ message: Message) async throws {
        try await sink.write(bytes: message._encode())
    }

    /// No more messages. On a client this half-closes the stream, so the server's request sequence
    /// ends; on a server it does nothing (the call ends when the handler returns).
    public func finish() {
        sink.writesDone()
    }

    public func write<S: Sequence>(contentsOf messages: S) async throws where S.Element == Message {
        for message in messages { try await write(message) }
    }
}
