import SwiftProtobuf

extension RPCChannel {
    /// Calls a method with one request and a stream of replies, handed to `body` as an `AsyncSequence`
    /// (which throws the call's error, if it fails). Leaving `body` early cancels the call.
    public func serverStreaming<Request, Response, Result: Sendable>(
        _ method: RPCMethod<Request, Response>, _ request: Request, options: CallOptions = CallOptions(),
        _ body: (RPCInbound<Response>) async throws -> Result
    ) async throws -> Result {
        try await withStreamCall(method.path, options) { call in
            try await call.write(bytes: request._encode())
            call.writesDone()
            return try await body(RPCInbound(buffer: call.inbound))
        }
    }

    /// Calls a method with a stream of requests, written by `body`, and one reply.
    public func clientStreaming<Request, Response>(
        _ method: RPCMethod<Request, Response>, options: CallOptions = CallOptions(),
        _ body: (RPCWriter<Request>) async throws -> Void
    ) async throws -> Response {
        try await withStreamCall(method.path, options) { call in
            try await body(RPCWriter(sink: call))
            call.writesDone()
            var replies = RPCInbound<Response>(buffer: call.inbound).makeAsyncIterator()
            guard let reply = try await replies.next() else {
                throw RPCError(code: .internalError, message: "\(method.path) ended without a reply")
            }
            _ = try await replies.next()  // waits for the status
            return reply
        }
    }

    /// Calls a method with streams both ways. `body` writes with the writer (`finish()` half-closes)
    /// and reads the replies; leaving `body` half-closes, and cancels the call if it is not over.
    public func bidirectional<Request, Response, Result: Sendable>(
        _ method: RPCMethod<Request, Response>, options: CallOptions = CallOptions(),
        _ body: (RPCWriter<Request>, RPCInbound<Response>) async throws -> Result
    ) async throws -> Result {
        try await withStreamCall(method.path, options) { call in
            try await body(RPCWriter(sink: call), RPCInbound(buffer: call.inbound))
        }
    }

    func withStreamCall<Result: Sendable>(
        _ path: String, _ options: CallOptions, _ body: (ClientStreamCall) async throws -> Result
    ) async throws -> Result {
        let call = try ClientStreamCall.start(channel: self, path: path, options: options)
        defer { call.release() }
        return try await withTaskCancellationHandler {
            try await body(call)
        } onCancel: {
            call.cancel()
        }
    }
}
