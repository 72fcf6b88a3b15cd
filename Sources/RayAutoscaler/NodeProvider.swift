import RayAutoscaling

/// A node a provider started, as the provider knows it.
public struct ProviderNode: Sendable, Hashable {
    public enum Status: Sendable, Hashable {
        /// Being started (its process or pod is on its way).
        case launching
        /// Started: the node should be registering with the GCS, or has.
        case started
        /// It could not be started, or it stopped by itself: why.
        case failed(String)
    }

    public var id: String
    public var type: String
    /// The address its raylet registers with (how the autoscaler finds it in the node table).
    public var ip: String
    public var status: Status

    public init(id: String, type: String, ip: String, status: Status) {
        self.id = id
        self.type = type
        self.ip = ip
        self.status = status
    }
}

/// Where the autoscaler's nodes come from: this machine (``LocalNodeProvider`` in the `ray` command),
/// or Kubernetes (the operator's provider, which patches a RayCluster's replicas).
public protocol NodeProvider: Sendable {
    /// Starts `count` nodes of `type`; their ids. Each comes up on its own (``nodes()`` follows it).
    func launch(_ type: NodeTypeConfig, count: Int) async throws -> [String]
    /// Stops these nodes (already drained by the autoscaler) and forgets them.
    func terminate(_ ids: [String]) async throws
    /// The nodes it started and has not terminated.
    func nodes() async throws -> [ProviderNode]
}
