/// The autoscaler's view after each round, kept in the GCS's internal KV
/// (``ResourceRequest/statusKey``) for `ray status`.
public struct AutoscalerReport: Codable, Sendable, Hashable {
    public struct Node: Codable, Sendable, Hashable {
        public var nodeID: String
        public var instanceID: String
        public var type: String
        public var ip: String
        /// RUNNING, IDLE or DRAINING.
        public var status: String
        public var idleMs: Int64

        public init(nodeID: String, instanceID: String, type: String, ip: String, status: String, idleMs: Int64) {
            self.nodeID = nodeID
            self.instanceID = instanceID
            self.type = type
            self.ip = ip
            self.status = status
            self.idleMs = idleMs
        }
    }

    public struct Pending: Codable, Sendable, Hashable {
        public var instanceID: String
        public var type: String
        public var ip: String
        /// "launching" (its `ray start` runs) or "starting" (started, not registered yet).
        public var status: String

        public init(instanceID: String, type: String, ip: String, status: String) {
            self.instanceID = instanceID
            self.type = type
            self.ip = ip
            self.status = status
        }
    }

    public struct Failure: Codable, Sendable, Hashable {
        /// LaunchFailed or NodeTerminated (Ray's words).
        public var kind: String
        public var type: String
        public var instanceID: String
        public var reason: String
        /// Seconds since 1970.
        public var time: Double

        public init(kind: String, type: String, instanceID: String, reason: String, time: Double) {
            self.kind = kind
            self.type = type
            self.instanceID = instanceID
            self.reason = reason
            self.time = time
        }
    }

    public var clusterName: String
    /// Seconds since 1970.
    public var time: Double
    public var nodes: [Node]
    public var pending: [Pending]
    public var failures: [Failure]
    public var resourceRequests: [[String: Double]]
    public var infeasible: [[String: Double]]
    /// Launches and terminations since the autoscaler started.
    public var launched: Int
    public var terminated: Int

    public init(clusterName: String, time: Double, nodes: [Node] = [], pending: [Pending] = [], failures: [Failure] = [],
                resourceRequests: [[String: Double]] = [], infeasible: [[String: Double]] = [], launched: Int = 0, terminated: Int = 0) {
        self.clusterName = clusterName
        self.time = time
        self.nodes = nodes
        self.pending = pending
        self.failures = failures
        self.resourceRequests = resourceRequests
        self.infeasible = infeasible
        self.launched = launched
        self.terminated = terminated
    }
}
