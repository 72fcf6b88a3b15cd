import CInterop
import Synchronization
import SwiftProtobuf

/// A client connection to one gRPC server. It connects lazily, reconnects after the server goes away
/// (with a short backoff), and is safe to share between tasks; calls on it are independent.
public final class RPCChannel: Sendable {
    /// Channel settings.
    public struct Configuration: Sendable {
        /// The largest reply message accepted; larger ones fail with RESOURCE_EXHAUSTED.
        public var maxReceiveMessageBytes: Int = 512 * 1024 * 1024
        /// The largest request message sent; larger ones fail with RESOURCE_EXHAUSTED.
        public var maxSendMessageBytes: Int = 512 * 1024 * 1024
        /// Reconnect backoff after a failed connection.
        public var reconnectBackoff: ClosedRange<Duration> = .milliseconds(100) ... .seconds(2)
        /// Bytes a streaming call may have queued before `write` waits.
        public var streamWindowBytes: Int = 4 * 1024 * 1024
        /// Messages read ahead of a stream's consumer.
        public var streamReadAhead: Int = 8
        /// TLS, or nil for plaintext.
        public var tls: ClientTLS?

        public init() {}
    }

    /// `host:port`.
    public let target: String
    let configuration: Configuration
    let pointer: OpaquePointerBox

    public init(target: String, configuration: Configuration = Configuration()) throws(RPCError) {
        self.target = target
        self.configuration = configuration
        var err: UnsafeMutablePointer<CChar>?
        let tls = configuration.tls
        let pointer = withCStrings([
            target, tls?.rootCAPEM, tls?.certificateChainPEM, tls?.privateKeyPEM, tls?.serverName,
        ]) { c in
            var options = grpcshim_channel_options(
                target: c[0],
                max_receive_message_bytes: Int32(clamping: configuration.maxReceiveMessageBytes),
                max_send_message_bytes: Int32(clamping: configuration.maxSendMessageBytes),
                tls_root_ca_pem: c[1], tls_client_cert_pem: c[2], tls_client_key_pem: c[3], tls_server_name: c[4],
                reconnect_backoff_min_ms: Int32(clamping: configuration.reconnectBackoff.lowerBound.milliseconds),
                reconnect_backoff_max_ms: Int32(clamping: configuration.reconnectBackoff.upperBound.milliseconds))
            return grpcshim_channel_create(&options, &err)
        }
        guard let pointer else {
            throw RPCError(code: .invalidArgument, message: "cannot make a channel to \(target): \(takeCError(err))")
        }
        self.pointer = OpaquePointerBox(pointer: pointer)
    }

    /// A convenience for `host` and `port`.
    public convenience init(host: String, port: Int, configuration: Configuration = Configuration()) throws(RPCError) {
        try self.init(target: "\(host):\(port)", configuration: configuration)
    }

    deinit { grpcshim_channel_destroy(pointer.pointer) }

    // MARK: unary

    /// Calls a unary method and returns its reply.
    public func unary<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, options: CallOptions = CallOptions()
    ) async throws(RPCError) -> Response {
        try await unaryResponse(method, request, options: options).message
    }

    /// Calls a unary method and returns its reply with the trailing metadata.
    public func unaryResponse<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, options: CallOptions = CallOptions()
    ) async throws(RPCError) -> RPCResponse<Response> {
        let raw = try await rawUnary(path: method.path, request._encode(), options: options)
        return RPCResponse(message: try Response._decode(raw.message), trailingMetadata: raw.trailingMetadata)
    }

    /// Calls a unary method with raw bytes. Cancelling the calling task cancels the call on both sides.
    public func rawUnary(path: String, _ request: [UInt8], options: CallOptions = CallOptions())
        async throws(RPCError) -> RPCResponse<[UInt8]>
    {
        try options.metadata.validate()
        let box = UnaryCallBox()
        let result: Result<RPCResponse<[UInt8]>, RPCError> = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<RPCResponse<[UInt8]>, RPCError>, Never>) in
                box.continuation = continuation
                let context = Unmanaged.passRetained(box).toOpaque()
                let call = options.withCCall(path: path) { pathC, pathLength, callOptions in
                    request.withUnsafeBufferPointer { bytes in
                        grpcshim_unary_call(pointer.pointer, pathC, pathLength, bytes.baseAddress, bytes.count,
                                            &callOptions, unaryEventCallback, context)
                    }
                }
                guard let call else {
                    Unmanaged<UnaryCallBox>.fromOpaque(context).release()
                    continuation.resume(returning: .failure(RPCError(code: .invalidArgument, message: "invalid call")))
                    return
                }
                box.setHandle(call)
            }
        } onCancel: {
            box.cancel()
        }
        box.releaseHandle()
        return try result.get()
    }
}

extension RPCChannel {
    /// Calls a unary method and hands the outcome to `completion` on the client's completion-queue
    /// thread, without a hop to Swift's executor: for callers that do a little work per reply (and
    /// maybe start the next call) in `completion`, which must not block.
    @discardableResult
    public func unary<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, options: CallOptions = CallOptions(),
        completion: @escaping @Sendable (Result<Response, RPCError>) -> Void
    ) -> RPCCallHandle {
        do {
            try options.metadata.validate()
        } catch {
            completion(.failure(error))
            return RPCCallHandle(box: nil)
        }
        let box = UnaryCallBox()
        box.callback = { result in
            completion(result.flatMap { raw in
                Result { () throws(RPCError) -> Response in try Response._decode(raw.message) }
            })
            box.finishCallback()
        }
        let bytes: [UInt8]
        do {
            bytes = try request._encode()
        } catch {
            completion(.failure(error))
            return RPCCallHandle(box: nil)
        }
        let context = Unmanaged.passRetained(box).toOpaque()
        let call = options.withCCall(path: method.path) { pathC, pathLength, callOptions in
            bytes.withUnsafeBufferPointer { bytes in
                grpcshim_unary_call(pointer.pointer, pathC, pathLength, bytes.baseAddress, bytes.count,
                                    &callOptions, unaryEventCallback, context)
            }
        }
        guard let call else {
            Unmanaged<UnaryCallBox>.fromOpaque(context).release()
            completion(.failure(RPCError(code: .invalidArgument, message: "invalid call")))
            return RPCCallHandle(box: nil)
        }
        box.setHandle(call)
        return RPCCallHandle(box: box)
    }
}

/// One unary call's state shared with the C callback.
private final class UnaryCallBox: @unchecked Sendable {
    // Written once before the call starts, read once by the callback.
    var continuation: CheckedContinuation<Result<RPCResponse<[UInt8]>, RPCError>, Never>?
    var callback: (@Sendable (Result<RPCResponse<[UInt8]>, RPCError>) -> Void)?
    private struct Handle {
        var call: OpaquePointerBox?
        var cancelled = false
        var finished = false
        var released = false
    }
    private let handle = Mutex(Handle())

    func setHandle(_ call: OpaquePointer) {
        let release = handle.withLock { state -> Bool in
            state.call = OpaquePointerBox(pointer: call)
            if state.cancelled { grpcshim_call_cancel(call) }
            guard state.finished else { return false }
            state.released = true
            return true
        }
        if release { grpcshim_call_release(call) }
    }

    /// The callback ran: the call's handle goes as soon as it is known.
    func finishCallback() {
        let call = handle.withLock { state -> OpaquePointerBox? in
            state.finished = true
            guard let call = state.call, !state.released else { return nil }
            state.released = true
            return call
        }
        if let call { grpcshim_call_release(call.pointer) }
    }

    /// Cancels the call if it is still running (under the lock, so its handle cannot be released
    /// meanwhile); a call not started yet is cancelled as it starts.
    func cancel() {
        handle.withLock { state in
            state.cancelled = true
            if let call = state.call, !state.released { grpcshim_call_cancel(call.pointer) }
        }
    }

    func releaseHandle() {
        let call = handle.withLock { state -> OpaquePointerBox? in
            guard let call = state.call, !state.released else { return nil }
            state.released = true
            return call
        }
        if let call { grpcshim_call_release(call.pointer) }
    }
}

/// A call started with a completion handler: `cancel()` ends it early (its completion then hears
/// CANCELLED); after it finished, nothing happens.
public struct RPCCallHandle: Sendable {
    fileprivate let box: UnaryCallBox?
    public func cancel() { box?.cancel() }
}

private let unaryEventCallback: grpcshim_call_event_cb = { context, event in
    let box = Unmanaged<UnaryCallBox>.fromOpaque(context!).takeRetainedValue()
    let event = event!.pointee
    let trailing = Metadata(event.metadata, count: event.metadata_count)
    let result: Result<RPCResponse<[UInt8]>, RPCError> = event.status_code == 0
        ? .success(RPCResponse(message: event.messageBytes, trailingMetadata: trailing))
        : .failure(RPCError(code: RPCError.Code(rawValue: Int(event.status_code)), message: event.statusMessage, metadata: trailing))
    if let callback = box.callback {
        box.callback = nil  // the closure holds the box: break the cycle
        callback(result)
    } else {
        box.continuation?.resume(returning: result)
    }
}
