import CInterop

/// Counts of the shim's live objects, for leak checks in tests and tools. Not API.
public enum _RPCDiagnostics {
    public struct LiveObjects: Sendable, Hashable, CustomStringConvertible {
        public var servers: Int
        public var serverCalls: Int
        public var channels: Int
        public var clientCalls: Int
        public var description: String {
            "servers=\(servers) serverCalls=\(serverCalls) channels=\(channels) clientCalls=\(clientCalls)"
        }
    }

    /// Every server, server call, channel and client call alive in this process.
    public static func liveObjects() -> LiveObjects {
        let c = cinterop_live_object_counts()
        return LiveObjects(servers: Int(c.servers), serverCalls: Int(c.server_calls), channels: Int(c.channels),
                           clientCalls: Int(c.client_calls))
    }
}

extension RPCServer {
    /// Calls this server accepted whose memory the shim still holds. Not API.
    public var _liveCalls: Int { core.liveCalls }
}

extension RPCChannel {
    /// Calls started on this channel whose memory the shim still holds. Not API.
    public var _liveCalls: Int { Int(grpcshim_channel_live_calls(pointer.pointer)) }
}
