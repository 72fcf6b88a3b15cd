import SwiftProtobuf

/// A stream's messages as raw bytes (no protobuf): for bulk data such as object chunks, where a
/// `bytes` field would cost a copy to encode and another to decode.
public struct RPCRawInbound: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    let buffer: InboundBuffer

    public struct AsyncIterator: AsyncIteratorProtocol {
        let buffer: InboundBuffer
        public mutating func next() async throws -> [UInt8]? { try await buffer.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: buffer) }
}

/// Writes raw messages to a stream (flow control as `RPCWriter`).
public struct RPCRawWriter: Sendable {
    let sink: any StreamSink

    public func write(_ bytes: [UInt8]) async throws { try await sink.write(bytes: bytes) }
}

extension RPCRouter {
    /// Serves a method whose request is a protobuf message and whose replies are raw messages.
    public mutating func registerRawServerStreaming<Request: SwiftProtobuf.Message>(
        path: String, request: Request.Type,
        _ body: @escaping @Sendable (Request, RPCRawWriter, ServerContext) async throws -> Void
    ) {
        handlers[path] = .stream { call, context in
            guard let first = try await call.inbound.next() else {
                throw RPCError(code: .invalidArgument, message: "\(path) needs a request message")
            }
            try await body(Request._decode(first), RPCRawWriter(sink: call), context)
        }
    }
}

extension RPCChannel {
    /// Calls a method with one protobuf request and a stream of raw replies, handed to `body`.
    public func rawServerStreaming<Request: SwiftProtobuf.Message, Result: Sendable>(
        path: String, _ request: Request, options: CallOptions = CallOptions(),
        _ body: (RPCRawInbound) async throws -> Result
    ) async throws -> Result {
        try await withStreamCall(path, options) { call in
            try await call.write(bytes: request._encode())
            call.writesDone()
            return try await body(RPCRawInbound(buffer: call.inbound))
        }
    }
}
