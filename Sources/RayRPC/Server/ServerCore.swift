import CInterop
import Synchronization

/// The Swift side of one shim server: routes events to calls. The shim holds one reference to it (its
/// callback context) until its shutdown has returned; every handler task holds another, so the C server
/// is freed only after the last late reply has been turned away.
final class ServerCore: Sendable {
    private enum Entry {
        case unary(Task<Void, Never>)
        case stream(ServerStreamCall)
    }

    let handlers: [String: RPCRouter.Handler]
    let configuration: RPCServer.Configuration
    /// What `.completionQueue` handlers prefer: the queue thread, else the server's executor.
    private let queueExecutor: CompletionQueueExecutor
    /// What `.completionQueueOrGlobalPool` handlers prefer.
    private static let queueOrPoolExecutor = CompletionQueueExecutor(fallback: .globalPool)
    private let calls = Mutex<[UInt64: Entry]>([:])
    private let pointer = Mutex<OpaquePointerBox?>(nil)
    private let contextReleased = Atomic<Bool>(false)
    /// The `authorization` value calls must carry (nil: no check).
    private let expectedAuthorization: [UInt8]?

    init(router: RPCRouter, configuration: RPCServer.Configuration) {
        self.handlers = router.handlers
        self.configuration = configuration
        self.expectedAuthorization = configuration.authToken.map(RPCAuth.expectedHeader)
        self.queueExecutor = CompletionQueueExecutor(fallback: .thread(configuration.executor))
    }

    func setPointer(_ pointer: OpaquePointer) {
        self.pointer.withLock { $0 = OpaquePointerBox(pointer: pointer) }
    }

    /// Blocking: shuts the shim server down, then drops the shim's reference to this object.
    func shutdownBlocking(graceMs: Int32) {
        guard let server = pointer.withLock({ $0 }) else { return }
        grpcshim_server_shutdown(server.pointer, graceMs)
        if !contextReleased.exchange(true, ordering: .acquiringAndReleasing) {
            Unmanaged.passUnretained(self).release()
        }
    }

    var liveCalls: Int {
        guard let server = pointer.withLock({ $0 }) else { return 0 }
        return Int(grpcshim_server_live_calls(server.pointer))
    }

    deinit {
        if let server = pointer.withLock({ $0 }) { grpcshim_server_destroy(server.pointer) }
    }

    // MARK: events (gRPC completion-queue thread; must not block)

    func handle(server: OpaquePointerBox, callID: UInt64, event: cinterop_event) {
        switch Int(event.kind) {
        case Int(CINTEROP_EVENT_CALL.rawValue):
            startCall(server: server, callID: callID, event: event)
        case Int(CINTEROP_EVENT_MESSAGE.rawValue):
            if case .stream(let call)? = calls.withLock({ $0[callID] }) { call.inbound.deliver(event.messageBytes) }
        case Int(CINTEROP_EVENT_END_OF_MESSAGES.rawValue):
            if case .stream(let call)? = calls.withLock({ $0[callID] }) { call.inbound.endOfMessages(finishes: true) }
        case Int(CINTEROP_EVENT_WRITE_DONE.rawValue):
            if case .stream(let call)? = calls.withLock({ $0[callID] }) {
                if event.ok != 0 {
                    call.window.completed(Int(event.bytes))
                } else {
                    call.window.close(RPCError(code: .unavailable, message: "the client went away"))
                }
            }
        case Int(CINTEROP_EVENT_DONE.rawValue):
            let entry = calls.withLock { $0.removeValue(forKey: callID) }
            let cancelled = event.cancelled != 0
            let error = RPCError(code: .cancelled, message: cancelled ? "the call was cancelled" : "the call is over")
            switch entry {
            case .unary(let task)?:
                if cancelled { task.cancel() }
            case .stream(let call)?:
                if cancelled { call.task.withLock { $0?.cancel() } }
                call.inbound.finish(error)
                call.window.close(error)
            case nil:
                break
            }
        default:
            break
        }
    }

    private func startCall(server: OpaquePointerBox, callID: UInt64, event: cinterop_event) {
        let method = event.methodPath
        guard let handler = handlers[method] else {
            finish(server, callID, RPCError(code: .unimplemented, message: "unknown method \(method)"), trailing: [:])
            return
        }
        let deadline: ContinuousClock.Instant? =
            event.deadline_ms >= 0 ? ContinuousClock.now + .milliseconds(event.deadline_ms) : nil
        let context = ServerContext(
            method: method, requestMetadata: Metadata(event.metadata, count: event.metadata_count), deadline: deadline)
        if let expected = expectedAuthorization, !RPCAuth.exempt.contains(method),
           !RPCAuth.accepts(context.requestMetadata, expected: expected) {
            finish(server, callID, RPCError(code: .unauthenticated,
                                            message: "\(method): missing or invalid authentication token (RAY_AUTH_MODE=token: set RAY_AUTH_TOKEN or ~/.ray/auth_token as the cluster has it)"),
                   trailing: [:])
            return
        }
        switch handler {
        case .unary(let body, let placement):
            guard event.has_message != 0 else {
                finish(server, callID, RPCError(code: .invalidArgument, message: "\(method) needs a request message"),
                       trailing: [:])
                return
            }
            let request = event.messageBytes
            let run: @Sendable () async -> Void = {
                do {
                    let reply = try await body(request, context)
                    self.reply(server, callID, reply, trailing: context.trailingMetadata)
                } catch {
                    self.finish(server, callID, Self.status(for: error), trailing: context.trailingMetadata)
                }
            }
            let preference: any TaskExecutor = switch placement {
            case .serverExecutor: configuration.executor
            case .completionQueue: queueExecutor
            case .completionQueueOrGlobalPool: Self.queueOrPoolExecutor
            }
            let task = Task.immediate(executorPreference: preference, operation: run)
            calls.withLock { $0[callID] = .unary(task) }
        case .stream(let body):
            let call = ServerStreamCall(server: server, callID: callID, configuration: configuration)
            calls.withLock { $0[callID] = .stream(call) }
            call.inbound.prime(with: event.has_message != 0 ? event.messageBytes : nil,
                               moreMayFollow: event.has_message != 0)
            let task = Task.immediate(executorPreference: configuration.executor) {
                do {
                    try await body(call, context)
                    self.finish(server, callID, nil, trailing: context.trailingMetadata)
                } catch {
                    self.finish(server, callID, Self.status(for: error), trailing: context.trailingMetadata)
                }
            }
            call.task.withLock { $0 = task }
        }
    }

    /// The longest status message sent as is.
    static let maxStatusMessageBytes = 16 * 1024

    static func status(for error: any Error) -> RPCError {
        switch error {
        case let error as RPCError: return error
        case is CancellationError: return RPCError(code: .cancelled, message: "the handler was cancelled")
        default: return RPCError(code: .unknown, message: "\(type(of: error)): \(error)")
        }
    }

    private func reply(_ server: OpaquePointerBox, _ callID: UInt64, _ bytes: [UInt8], trailing: Metadata) {
        let rc = trailing.withCMetadata { md, count in
            bytes.withUnsafeBufferPointer { buffer in
                grpcshim_server_reply(server.pointer, callID, buffer.baseAddress, buffer.count, md, count)
            }
        }
        if rc == -2 {
            finish(server, callID, RPCError(code: .internalError, message: "the handler set invalid trailing metadata"),
                   trailing: [:])
        }
    }

    /// Ends a call with OK (`error == nil`) or the error's status.
    func finish(_ server: OpaquePointerBox, _ callID: UInt64, _ error: RPCError?, trailing: Metadata) {
        let code = Int32(error?.code.rawValue ?? 0)
        var message = error?.message ?? ""
        if message.utf8.count > Self.maxStatusMessageBytes {
            // Headers are bounded (64 KiB in all): keep the start of a long message, say it was cut.
            message = String(decoding: message.utf8.prefix(Self.maxStatusMessageBytes), as: UTF8.self)
                + "… (truncated from \(error!.message.utf8.count) bytes)"
        }
        var allTrailing = trailing
        for entry in error?.metadata ?? [:] { allTrailing.add(entry.key, bytes: entry.value) }
        let rc = allTrailing.withCMetadata { md, count in
            message.utf8CString.withUnsafeBufferPointer { messageC in
                grpcshim_server_finish(server.pointer, callID, code, messageC.baseAddress, messageC.count - 1, md, count)
            }
        }
        if rc == -2 {
            let text = "the handler set invalid trailing metadata"
            _ = text.utf8CString.withUnsafeBufferPointer { messageC in
                grpcshim_server_finish(server.pointer, callID, Int32(RPCError.Code.internalError.rawValue),
                                       messageC.baseAddress, messageC.count - 1, nil, 0)
            }
        }
    }
}

/// A streaming call on the server: its inbound messages, its write window, its handler task.
final class ServerStreamCall: StreamSink {
    let server: OpaquePointerBox
    let callID: UInt64
    let inbound: InboundBuffer
    let window: OutboundWindow
    let task = Mutex<Task<Void, Never>?>(nil)

    init(server: OpaquePointerBox, callID: UInt64, configuration: RPCServer.Configuration) {
        self.server = server
        self.callID = callID
        self.inbound = InboundBuffer(capacity: configuration.streamReadAhead) {
            grpcshim_server_read(server.pointer, callID) == 0
        }
        self.window = OutboundWindow(limit: configuration.streamWindowBytes)
    }

    func write(bytes: [UInt8]) async throws {
        try await window.reserve(bytes.count)
        let rc = bytes.withUnsafeBufferPointer { grpcshim_server_write(server.pointer, callID, $0.baseAddress, $0.count) }
        if rc != 0 {
            window.completed(bytes.count)
            throw RPCError(code: .cancelled, message: "the call is over")
        }
    }
}
