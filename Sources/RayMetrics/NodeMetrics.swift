import CoreMetrics
import Foundation
import Prometheus

/// One node's metrics in Prometheus's text format, with Ray's names and labels
/// (../shared/notes/ray-wire-formats.md, part C §1), through swift-metrics backed by swift-prometheus.
/// Gauges are set from samples (`update`); a labelled series seen before and absent from a sample
/// is set to 0, so a state a count leaves (an actor no longer ALIVE) reads 0, not its last value.
public final class NodeMetrics: @unchecked Sendable {
    public struct Identity: Sendable {
        public var ip: String
        public var sessionName: String
        public var isHead: Bool
        public static let version = "2.60.0"

        public init(ip: String, sessionName: String, isHead: Bool) {
            self.ip = ip
            self.sessionName = sessionName
            self.isHead = isHead
        }
    }

    /// What a scrape reports: the node's hardware, the raylet's view, and (on the head) the GCS's.
    public struct Sample: Sendable {
        public var cpuUtilization: Double = 0
        public var cpuCount: Int = 0
        public var memoryTotal: Int64 = 0
        public var memoryAvailable: Int64 = 0
        public var resourcesTotal: [String: Double] = [:]
        public var resourcesAvailable: [String: Double] = [:]
        public var objectStoreUsed: Int64 = 0
        public var workers: Int = 0
        /// Head only: actors by (state, class name, job hex).
        public var actors: [StateKey: Int] = [:]
        /// Head only: placement groups by state.
        public var placementGroups: [String: Int] = [:]
        public var aliveNodes: Int?
        /// Head only: task attempts by (state, function name, job hex), from the GCS's task events.
        public var tasks: [StateKey: Int] = [:]

        public init() {}
    }

    public struct StateKey: Hashable, Sendable {
        public var state: String
        public var name: String
        public var jobID: String
        public init(state: String, name: String, jobID: String) {
            self.state = state
            self.name = name
            self.jobID = jobID
        }
    }

    public static let actorStates = ["DEPENDENCIES_UNREADY", "PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD"]
    public static let placementGroupStates = ["PENDING", "PREPARED", "CREATED", "REMOVED", "RESCHEDULING"]

    let identity: Identity
    let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory
    private let lock = NSLock()
    private var gauges: [String: CoreMetrics.Gauge] = [:]
    private var seen: [String: Set<[String]>] = [:]

    public init(identity: Identity) {
        self.identity = identity
        self.factory = PrometheusMetricsFactory(registry: registry)
    }

    var nodeLabels: [(String, String)] {
        [("ip", identity.ip), ("Version", Identity.version), ("SessionName", identity.sessionName),
         ("IsHeadNode", identity.isHead ? "true" : "false"), ("RayNodeType", identity.isHead ? "head" : "worker")]
    }

    func componentLabels(_ component: String) -> [(String, String)] {
        [("Component", component), ("Version", Identity.version), ("NodeAddress", identity.ip),
         ("SessionName", identity.sessionName)]
    }

    private func gauge(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Gauge {
        let key = name + "|" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
        if let gauge = gauges[key] { return gauge }
        let gauge = CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
        gauges[key] = gauge
        return gauge
    }

    /// Sets a family of labelled gauges: every series in `values`, and 0 for those seen before.
    private func family(_ name: String, base: [(String, String)], keys: [String], _ values: [[String]: Double]) {
        var all = seen[name, default: []]
        all.formUnion(values.keys)
        seen[name] = all
        for labels in all {
            gauge(name, zip(keys, labels).map { ($0, $1) } + base).record(values[labels] ?? 0)
        }
    }

    public func update(_ sample: Sample) {
        lock.withLock {
            let node = nodeLabels
            gauge("ray_node_cpu_utilization", node).record(sample.cpuUtilization)
            gauge("ray_node_cpu_count", node).record(Double(sample.cpuCount))
            gauge("ray_node_mem_total", node).record(Double(sample.memoryTotal))
            gauge("ray_node_mem_available", node).record(Double(sample.memoryAvailable))
            gauge("ray_node_mem_used", node).record(Double(sample.memoryTotal - sample.memoryAvailable))

            var resources: [[String]: Double] = [:]
            for (name, total) in sample.resourcesTotal where !name.hasPrefix("node:") {
                let available = sample.resourcesAvailable[name] ?? 0
                resources[[name, "AVAILABLE"]] = available
                resources[[name, "USED"]] = max(0, total - available)
            }
            family("ray_resources", base: componentLabels("raylet"), keys: ["Name", "State"], resources)
            family("ray_object_store_memory", base: componentLabels("raylet"), keys: ["Location", "ObjectState"],
                   [["MMAP_SHM", "SEALED"]: Double(sample.objectStoreUsed)])
            gauge("ray_num_workers_started", componentLabels("raylet")).record(Double(sample.workers))

            guard identity.isHead else { return }
            var actors: [[String]: Double] = [:]
            for (key, count) in sample.actors { actors[[key.state, key.name, key.jobID, "gcs"]] = Double(count) }
            family("ray_actors", base: componentLabels("gcs_server"), keys: ["State", "Name", "JobId", "Source"], actors)
            var tasks: [[String]: Double] = [:]
            for (key, count) in sample.tasks {
                tasks[[key.state, key.name, key.jobID, "0", key.state == "RUNNING" ? "executor" : "owner"], default: 0] += Double(count)
            }
            family("ray_tasks", base: componentLabels("gcs_server"), keys: ["State", "Name", "JobId", "IsRetry", "Source"], tasks)
            var groups: [[String]: Double] = [:]
            for state in Self.placementGroupStates { groups[[state]] = Double(sample.placementGroups[state] ?? 0) }
            family("ray_placement_groups", base: componentLabels("gcs_server"), keys: ["State"], groups)
            if let alive = sample.aliveNodes {
                gauge("ray_cluster_active_nodes", [("node_type", "all"), ("Version", Identity.version),
                                                   ("SessionName", identity.sessionName)]).record(Double(alive))
            }
        }
    }

    /// The text a scrape gets.
    public func exposition() -> String { lock.withLock { registry.emitToString() } }
}
