import CInterop
import RayConcurrency
import Synchronization

extension ThreadExecutor {
    /// Where handlers of servers that name no executor of their own run, and RPC-layer tasks
    /// (subscriptions, test services): a thread of the RPC layer's, not Swift's global pool.
    public static let rpc = ThreadExecutor(name: "ray-rpc")
}

/// A gRPC server on the shim: binds `host:port` (port 0 picks a free one), serves the router's
/// methods, answers unknown methods with UNIMPLEMENTED, and shuts down gracefully.
///
/// ```swift
/// var router = RPCRouter()
/// router.register(echo) { request, _ in request }
/// let server = try RPCServer(router: router)
/// print(server.port)
/// await server.shutdown()
/// ```
public final class RPCServer: Sendable {
    /// Server settings.
    public struct Configuration: Sendable {
        /// The largest request message accepted; larger ones fail with RESOURCE_EXHAUSTED.
        public var maxReceiveMessageBytes: Int = 512 * 1024 * 1024
        /// The largest reply message sent.
        public var maxSendMessageBytes: Int = 512 * 1024 * 1024
        /// Completion queues, each polled by one thread (events of one call stay on one thread).
        public var completionQueues: Int = 1
        /// Bytes a streaming handler may have queued before `write` waits.
        public var streamWindowBytes: Int = 4 * 1024 * 1024
        /// Messages read ahead of a streaming handler.
        public var streamReadAhead: Int = 8
        /// TLS, or nil for plaintext.
        public var tls: ServerTLS?
        /// Also listen on this Linux abstract Unix socket (no file; reach it with
        /// `RPCChannel(target: "unix-abstract:<name>")`): peers on the same machine skip TCP.
        public var localSocketName: String?
        /// Where handlers go on after their first suspension (they start on the completion-queue
        /// thread that received the call). A daemon passes its own, so its handlers never wait for a
        /// thread of Swift's global pool; handlers placed `.completionQueue` stay on the queue
        /// thread where they can and fall back to this one.
        public var executor: ThreadExecutor = .rpc
        /// Calls must carry `authorization: Bearer <token>` (nil: no check). The cluster's, by default.
        public var authToken: String? = RPCAuth.token

        public init() {}
    }

    /// The port the server is bound to.
    public let port: Int
    /// The host it was asked to bind.
    public let host: String
    let core: ServerCore
    private let shutdownState = Mutex(ShutdownState.running)

    private enum ShutdownState {
        case running
        case shuttingDown([CheckedContinuation<Void, Never>])
        case shutDown
    }

    /// Binds and starts serving at once.
    public init(host: String = "127.0.0.1", port: Int = 0, router: RPCRouter,
                configuration: Configuration = Configuration()) throws(RPCError) {
        let core = ServerCore(router: router, configuration: configuration)
        let address = "\(host):\(port)"
        var boundPort: Int32 = 0
        var err: UnsafeMutablePointer<CChar>?
        let context = Unmanaged.passRetained(core).toOpaque()  // released after the shim's shutdown
        let tls = configuration.tls
        let local = configuration.localSocketName.map { "unix-abstract:" + $0 }
        let pointer = withCStrings([address, tls?.certificateChainPEM, tls?.privateKeyPEM, tls?.clientCAPEM, local]) { c in
            var options = grpcshim_server_options(
                address: c[0],
                max_receive_message_bytes: Int32(clamping: configuration.maxReceiveMessageBytes),
                max_send_message_bytes: Int32(clamping: configuration.maxSendMessageBytes),
                completion_queues: Int32(clamping: configuration.completionQueues),
                tls_cert_chain_pem: c[1], tls_private_key_pem: c[2], tls_client_ca_pem: c[3], local_address: c[4])
            return grpcshim_server_start(&options, serverEventCallback, context, &boundPort, &err)
        }
        guard let pointer else {
            Unmanaged<ServerCore>.fromOpaque(context).release()
            throw RPCError(code: .unavailable, message: "cannot serve on \(address)\(local.map { " and \($0)" } ?? ""): \(takeCError(err))")
        }
        core.setPointer(pointer)
        self.core = core
        self.host = host
        self.port = Int(boundPort)
    }

    /// Stops accepting calls, gives calls in flight `grace` to finish, cancels the rest, and returns once
    /// every call has ended. Idempotent; concurrent callers all wait for the same shutdown.
    public func shutdown(grace: Duration = .seconds(5)) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let start = shutdownState.withLock { state -> Bool in
                switch state {
                case .running:
                    state = .shuttingDown([continuation])
                    return true
                case .shuttingDown(var waiters):
                    waiters.append(continuation)
                    state = .shuttingDown(waiters)
                    return false
                case .shutDown:
                    continuation.resume()
                    return false
                }
            }
            guard start else { return }
            let core = self.core
            let graceMs = Int32(clamping: max(0, grace.milliseconds))
            runOnNewThread { [self] in
                core.shutdownBlocking(graceMs: graceMs)
                let waiters = shutdownState.withLock { state -> [CheckedContinuation<Void, Never>] in
                    defer { state = .shutDown }
                    if case .shuttingDown(let waiters) = state { return waiters }
                    return []
                }
                for waiter in waiters { waiter.resume() }
            }
        }
    }

    deinit {
        let needed = shutdownState.withLock { state -> Bool in
            if case .running = state {
                state = .shutDown
                return true
            }
            return false
        }
        if needed {
            let core = self.core
            runOnNewThread { core.shutdownBlocking(graceMs: 0) }
        }
    }
}

/// The C callback: every server event of every call.
private let serverEventCallback: grpcshim_server_event_cb = { context, server, callID, event in
    let core = Unmanaged<ServerCore>.fromOpaque(context!).takeUnretainedValue()
    withEventScope { core.handle(server: OpaquePointerBox(pointer: server!), callID: callID, event: event!.pointee) }
}
