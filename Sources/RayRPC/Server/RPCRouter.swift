import SwiftProtobuf

/// The handlers a server serves, by method path. Built before the server starts and fixed afterwards.
public struct RPCRouter: Sendable {
    enum Handler: Sendable {
        /// One request message in, one reply out; `onCompletionQueue`: the handler prefers
        /// ``CompletionQueueExecutor``.
        case unary(@Sendable ([UInt8], ServerContext) async throws -> [UInt8], onCompletionQueue: Bool)
        /// Any streaming shape: the call owns its inbound messages and its writer.
        case stream(@Sendable (ServerStreamCall, ServerContext) async throws -> Void)
    }

    private(set) var handlers: [String: Handler] = [:]

    public init() {}

    /// The method paths registered.
    public var methods: [String] { handlers.keys.sorted() }

    /// Serves a unary method. Every handler starts on the completion-queue thread that received the
    /// request and runs there until it first suspends, then on the server's executor
    /// (``RPCServer/Configuration/executor``). With `onCompletionQueue` it keeps running on the
    /// completion-queue threads that resume it (``CompletionQueueExecutor``), hops to idle actors
    /// included, and replies from there: for short handlers on a latency-critical path.
    public mutating func register<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        onCompletionQueue: Bool = false,
        _ body: @escaping @Sendable (Request, ServerContext) async throws -> Response
    ) {
        handlers[method.path] = .unary({ bytes, context in
            try await body(Request._decode(bytes), context)._encode()
        }, onCompletionQueue: onCompletionQueue)
    }

    /// Serves a method with one request and a stream of responses.
    public mutating func registerServerStreaming<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ body: @escaping @Sendable (Request, RPCWriter<Response>, ServerContext) async throws -> Void
    ) {
        handlers[method.path] = .stream { call, context in
            guard let first = try await call.inbound.next() else {
                throw RPCError(code: .invalidArgument, message: "\(method.path) needs a request message")
            }
            try await body(Request._decode(first), RPCWriter(sink: call), context)
        }
    }

    /// Serves a method with a stream of requests and one response.
    public mutating func registerClientStreaming<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ body: @escaping @Sendable (RPCInbound<Request>, ServerContext) async throws -> Response
    ) {
        handlers[method.path] = .stream { call, context in
            let response = try await body(RPCInbound(buffer: call.inbound), context)
            try await call.write(bytes: response._encode())
        }
    }

    /// Serves a method with streams both ways.
    public mutating func registerBidirectional<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ body: @escaping @Sendable (RPCInbound<Request>, RPCWriter<Response>, ServerContext) async throws -> Void
    ) {
        handlers[method.path] = .stream { call, context in
            try await body(RPCInbound(buffer: call.inbound), RPCWriter(sink: call), context)
        }
    }

    /// Serves a unary method on raw bytes (no protobuf).
    public mutating func registerRaw(
        path: String, onCompletionQueue: Bool = false,
        _ body: @escaping @Sendable ([UInt8], ServerContext) async throws -> [UInt8]
    ) {
        handlers[path] = .unary(body, onCompletionQueue: onCompletionQueue)
    }
}
