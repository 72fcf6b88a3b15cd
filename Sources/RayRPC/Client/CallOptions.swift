import CInterop

/// Per-call settings. Every call has a deadline.
public struct CallOptions: Sendable {
    /// How long the call may take in all; past it the call fails with DEADLINE_EXCEEDED.
    public var timeout: Duration
    /// Request metadata.
    public var metadata: Metadata
    /// Wait for the channel to connect (up to the deadline) instead of failing fast with UNAVAILABLE.
    public var waitForReady: Bool

    public init(timeout: Duration = .seconds(30), metadata: Metadata = [:], waitForReady: Bool = false) {
        self.timeout = timeout
        self.metadata = metadata
        self.waitForReady = waitForReady
    }
}

/// A reply with the trailing metadata that came with it.
public struct RPCResponse<Message: Sendable>: Sendable {
    public var message: Message
    public var trailingMetadata: Metadata
}

extension CallOptions {
    /// Calls `body` with the method path as C text and these options in C form, valid inside `body`.
    func withCCall<R>(
        path: String, _ body: (UnsafePointer<CChar>?, Int, inout grpcshim_call_options) -> R
    ) -> R {
        // The cluster's token, when it has one (RPCAuth), on every call.
        var metadata = self.metadata
        if let token = RPCAuth.token, metadata[RPCAuth.metadataKey] == nil { metadata.add(RPCAuth.metadataKey, "Bearer \(token)") }
        return metadata.withCMetadata { md, count in
            var options = grpcshim_call_options(
                metadata: md, metadata_count: count, timeout_ms: max(1, timeout.milliseconds),
                wait_for_ready: waitForReady ? 1 : 0)
            return path.utf8CString.withUnsafeBufferPointer { pathC in
                body(pathC.baseAddress, pathC.count - 1, &options)
            }
        }
    }
}
