import CInterop
import Synchronization

/// One streaming call on a channel: the handle the shim gave, its inbound messages and write window.
/// The C callback holds one reference until the DONE event; the scope that started the call holds the
/// shim handle and releases it (cancelling the call if it is not over) when it ends.
final class ClientStreamCall: StreamSink {
    let inbound: InboundBuffer
    let window: OutboundWindow
    private let handle = HandleCell()
    private let status = Mutex<(done: Bool, error: RPCError?, trailing: Metadata)>((false, nil, [:]))
    private let finished = Mutex(false)  // writesDone was called

    init(configuration: RPCChannel.Configuration) {
        let handle = self.handle
        window = OutboundWindow(limit: configuration.streamWindowBytes)
        inbound = InboundBuffer(capacity: configuration.streamReadAhead) {
            handle.with { grpcshim_call_read($0) == 0 } ?? false
        }
    }

    /// Starts the call; throws if the shim refuses it (bad metadata).
    static func start(channel: RPCChannel, path: String, options: CallOptions) throws(RPCError) -> ClientStreamCall {
        try options.metadata.validate()
        let call = ClientStreamCall(configuration: channel.configuration)
        let context = Unmanaged.passRetained(call).toOpaque()
        let pointer = options.withCCall(path: path) { pathC, pathLength, callOptions in
            grpcshim_stream_call(channel.pointer.pointer, pathC, pathLength, &callOptions, streamEventCallback, context)
        }
        guard let pointer else {
            Unmanaged<ClientStreamCall>.fromOpaque(context).release()
            throw RPCError(code: .invalidArgument, message: "the shim refused a call to \(path)")
        }
        call.handle.set(pointer)
        call.inbound.start()
        return call
    }

    func write(bytes: [UInt8]) async throws {
        try await window.reserve(bytes.count)
        let rc = handle.with { call in
            bytes.withUnsafeBufferPointer { grpcshim_call_write(call, $0.baseAddress, $0.count) }
        } ?? -1
        if rc != 0 {
            window.completed(bytes.count)
            if finished.withLock({ $0 }) {
                throw RPCError(code: .failedPrecondition, message: "a write after the stream was finished")
            }
            // The call is ending (the server answered, or it was cancelled): report the status it ends
            // with, which the shim always delivers, rather than a bare "over".
            throw await window.closed()
        }
    }

    /// Half-closes: the server's inbound stream ends after the queued messages.
    func writesDone() {
        finished.withLock { $0 = true }
        _ = handle.with { grpcshim_call_writes_done($0) }
    }

    func cancel() {
        handle.with { grpcshim_call_cancel($0) }
    }

    /// Drops the handle; a call not yet over is cancelled.
    func release() {
        if let call = handle.take() { grpcshim_call_release(call) }
    }

    var currentError: RPCError? { status.withLock { $0.error } }
    var trailingMetadata: Metadata { status.withLock { $0.trailing } }

    // MARK: events (gRPC thread)

    fileprivate func handle(_ event: cinterop_event) {
        switch Int(event.kind) {
        case Int(CINTEROP_EVENT_MESSAGE.rawValue):
            inbound.deliver(event.messageBytes)
        case Int(CINTEROP_EVENT_END_OF_MESSAGES.rawValue):
            inbound.endOfMessages(finishes: false)  // the status decides how the sequence ends
        case Int(CINTEROP_EVENT_WRITE_DONE.rawValue):
            if event.ok != 0 {
                window.completed(Int(event.bytes))
            } else {
                // The call is ending: its DONE, which gRPC always delivers to a client call, brings
                // the status (e.g. the server's answer) that the writers should see.
                window.breakOff(Int(event.bytes))
            }
        case Int(CINTEROP_EVENT_DONE.rawValue):
            let trailing = Metadata(event.metadata, count: event.metadata_count)
            let error: RPCError? =
                event.status_code == 0
                ? nil
                : RPCError(code: RPCError.Code(rawValue: Int(event.status_code)), message: event.statusMessage,
                           metadata: trailing)
            status.withLock { $0 = (true, error, trailing) }
            inbound.finish(error)
            window.close(error ?? RPCError(code: .failedPrecondition, message: "the call is over"))
        default:
            break
        }
    }
}

private let streamEventCallback: grpcshim_call_event_cb = { context, event in
    let event = event!.pointee
    if Int(event.kind) == Int(CINTEROP_EVENT_DONE.rawValue) {
        Unmanaged<ClientStreamCall>.fromOpaque(context!).takeRetainedValue().handle(event)
    } else {
        Unmanaged<ClientStreamCall>.fromOpaque(context!).takeUnretainedValue().handle(event)
    }
}

/// The shim handle of a client call. Operations run outside the lock on a reference of their own, since
/// gRPC may run a callback inline (which may come back here).
final class HandleCell: Sendable {
    private let pointer = Mutex<OpaquePointerBox?>(nil)

    func set(_ call: OpaquePointer) { pointer.withLock { $0 = OpaquePointerBox(pointer: call) } }

    /// Runs `body` on the call, or returns nil once it was released.
    func with<R>(_ body: (OpaquePointer) -> R) -> R? {
        guard let call = pointer.withLock({ box -> OpaquePointerBox? in
            if let box { grpcshim_call_ref(box.pointer) }
            return box
        }) else { return nil }
        defer { grpcshim_call_unref(call.pointer) }
        return body(call.pointer)
    }

    /// Takes the handle out, for release.
    func take() -> OpaquePointer? {
        pointer.withLock { box -> OpaquePointer? in
            defer { box = nil }
            return box?.pointer
        }
    }
}
