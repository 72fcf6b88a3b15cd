import SwiftProtobuf

/// The handlers a server serves, by method path. Built before the server starts and fixed afterwards.
public struct RPCRouter: Sendable {
    /// Where a unary handler goes on after its first suspension (it starts on the completion-queue
    /// thread that received the call).
    public enum Placement: Sendable {
        /// On the server's executor (``RPCServer/Configuration/executor``).
        case serverExecutor
        /// On the completion-queue threads that resume it (``CompletionQueueExecutor``), hops to idle
        /// actors included, else on the server's executor: short handlers on a latency-critical path.
        case completionQueue
        /// The same, but else on Swift's global pool: for handlers that run user code, which must not
        /// hold up the server's executor (and may keep the pool busy, as user code does).
        case completionQueueOrGlobalPool
    }

    enum Handler: Sendable {
        /// One request message in, one reply out.
        case unary(@Sendable ([UInt8], ServerContext) async throws -> [UInt8], placement: Placement)
        /// Any streaming shape: the call owns its inbound messages and its writer.
        case stream(@Sendable (ServerStreamCall, ServerContext) async throws -> Void)
    }

    var handlers: [String: Handler] = [:]

    public init() {}

    /// The method paths registered.
    public var methods: [String] { handlers.keys.sorted() }

    /// Serves a unary method. Every handler starts on the completion-queue thread that received the
    /// request and runs there until it first suspends, then where `placement` says.
    public mutating func register<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        placement: Placement = .serverExecutor,
        _ body: @escaping @Sendable (Request, ServerContext) async throws -> Response
    ) {
        handlers[method.path] = .unary({ bytes, context in
            try await body(Request._decode(bytes), context)._encode()
        }, placement: placement)
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
        path: String, placement: Placement = .serverExecutor,
        _ body: @escaping @Sendable ([UInt8], ServerContext) async throws -> [UInt8]
    ) {
        handlers[path] = .unary(body, placement: placement)
    }
}
