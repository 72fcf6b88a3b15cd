import Foundation
import RayAutoscaling
import RayCommon
import RayGCSClient
import RayProtos
import RayScheduling

/// The cluster's status as Ray 2.60's autoscaler prints it (`ray status`, and the dashboard's
/// `GET /api/cluster_status`): nodes, resource usage and pending demand, from the GCS's node table,
/// resource view and placement groups, and the autoscaler's report when one runs (node types,
/// pending launches, recent failures).
public enum ClusterStatus {
    public struct Cluster: Sendable {
        public var nodes: [Ray_Rpc_GcsNodeInfo]
        public var view: [Ray_Rpc_ResourcesData]
        public var groups: [Ray_Rpc_PlacementGroupTableData] = []
        public var report: AutoscalerReport?

        public init(nodes: [Ray_Rpc_GcsNodeInfo], view: [Ray_Rpc_ResourcesData],
                    groups: [Ray_Rpc_PlacementGroupTableData] = [], report: AutoscalerReport? = nil) {
            self.nodes = nodes
            self.view = view
            self.groups = groups
            self.report = report
        }
    }

    /// Everything `format` needs, read from the GCS.
    public static func fetch(_ gcs: GCSClient) async throws -> Cluster {
        let report = try await gcs.kv().get(ResourceRequest.statusKey).flatMap { try? JSONDecoder().decode(AutoscalerReport.self, from: $0) }
        return Cluster(nodes: try await gcs.nodes(), view: try await gcs.resourceUsage(), groups: try await gcs.placementGroups(),
                       report: report)
    }

    public static func format(_ cluster: Cluster, at time: Date, verbose: Bool = false) -> String {
        let stamp = DateFormatter()
        stamp.dateFormat = "yyyy-MM-dd HH:mm:ss.SSSSSS"
        let header = "======== Autoscaler status: \(stamp.string(from: time)) ========"
        let rule = String(repeating: "-", count: header.count)
        let alive = cluster.nodes.filter { $0.state == .alive }
        let reports = Dictionary(cluster.view.map { ($0.nodeID, $0) }, uniquingKeysWith: { a, _ in a })
        var lines = [header, "Node status", rule]
        lines += nodeStatus(cluster, alive: alive)

        var totals: [String: Double] = [:]
        var used: [String: Double] = [:]
        var demand: [String: Int] = [:]
        var unreported: [String] = []
        for node in alive {
            guard let report = reports[node.nodeID] else {
                for (name, amount) in node.resourcesTotal { totals[name, default: 0] += amount }
                unreported.append("\(node.nodeManagerAddress):\(node.nodeManagerPort)")
                continue
            }
            for (name, amount) in report.resourcesTotal {
                totals[name, default: 0] += amount
                if name != "object_store_memory" { used[name, default: 0] += max(0, amount - (report.resourcesAvailable[name] ?? 0)) }
            }
            used["object_store_memory", default: 0] += Double(report.objectStoreUsedBytes)
            // A group's own leases are not demand of their own: the group is (below).
            for entry in report.resourceLoad where !entry.shape.keys.contains(where: BundleResources.isGroupResource) {
                demand[pythonDict(entry.shape), default: 0] += Int(entry.count)
            }
        }
        lines += ["", "Resources", rule, "Total Usage:"]
        lines += usageLines(totals: totals, used: used, indent: " ")
        lines += ["", "From request_resources:"]
        let requests = cluster.report?.resourceRequests ?? []
        if requests.isEmpty { lines.append(" (none)") }
        var requestCounts: [String: Int] = [:]
        for bundle in requests { requestCounts[pythonDict(bundle), default: 0] += 1 }
        for (shape, count) in requestCounts.sorted(by: { $0.key < $1.key }) { lines.append(" \(shape): \(count) from request_resources()") }
        lines.append("Pending Demands:")
        var groupDemand: [String: Int] = [:]
        for group in cluster.groups where group.state == .pending || group.state == .rescheduling {
            groupDemand["\(bundleList(group.bundles.map(\.unitResources))) (\(strategyName(group.strategy)))", default: 0] += 1
        }
        if demand.isEmpty && groupDemand.isEmpty { lines.append(" (no resource demands)") }
        for (shape, count) in demand.sorted(by: { $0.key < $1.key }) { lines.append(" \(shape): \(count)+ pending tasks/actors") }
        for (shape, count) in groupDemand.sorted(by: { $0.key < $1.key }) { lines.append(" \(shape): \(count)+ pending placement groups") }
        if !unreported.isEmpty { lines.append("(no resource report yet from: \(unreported.joined(separator: ", ")))") }
        if verbose { lines += nodeDetails(cluster, alive: alive, reports: reports) }
        return lines.joined(separator: "\n")
    }

    /// Active, Idle, Pending and Recent failures (by node type when an autoscaler runs).
    private static func nodeStatus(_ cluster: Cluster, alive: [Ray_Rpc_GcsNodeInfo]) -> [String] {
        var lines: [String] = ["Active:"]
        guard let report = cluster.report else {
            if alive.isEmpty { lines.append(" (no active nodes)") }
            for node in alive { lines.append(" 1 node_\(Hex.string(node.nodeID))") }
            lines += ["Pending:", " (no pending nodes)", "Recent failures:"]
            let dead = cluster.nodes.filter { $0.state == .dead }
            if dead.isEmpty { lines.append(" (no failures)") }
            for node in dead { lines.append(" node_\(Hex.string(node.nodeID)): NodeTerminated (ip: \(node.nodeManagerAddress))") }
            return lines
        }
        let aliveIDs = Set(alive.map { Hex.string($0.nodeID) })
        let nodes = report.nodes.filter { aliveIDs.contains($0.nodeID) }
        func grouped(_ entries: [AutoscalerReport.Node]) -> [String] {
            var counts: [String: Int] = [:]
            for entry in entries { counts[entry.type, default: 0] += 1 }
            return counts.sorted { $0.key < $1.key }.map { " \($0.value) \($0.key)" }
        }
        let active = grouped(nodes.filter { $0.status != "IDLE" })
        lines += active.isEmpty ? [" (no active nodes)"] : active
        lines.append("Idle:")
        let idle = grouped(nodes.filter { $0.status == "IDLE" })
        lines += idle.isEmpty ? [" (no idle nodes)"] : idle
        lines.append("Pending:")
        if report.pending.isEmpty { lines.append(" (no pending nodes)") }
        var launching: [String: Int] = [:]
        for pending in report.pending where pending.status == "launching" { launching[pending.type, default: 0] += 1 }
        for (type, count) in launching.sorted(by: { $0.key < $1.key }) { lines.append(" \(type), \(count) launching") }
        for pending in report.pending where pending.status != "launching" { lines.append(" \(pending.ip): \(pending.type), \(pending.status)") }
        lines.append("Recent failures:")
        if report.failures.isEmpty { lines.append(" (no failures)") }
        let clock = DateFormatter()
        clock.dateFormat = "HH:mm:ss"
        for failure in report.failures.sorted(by: { $0.time > $1.time }) {
            if failure.kind == "LaunchFailed" {
                lines.append(" \(failure.type): LaunchFailed (latest_attempt: \(clock.string(from: Date(timeIntervalSince1970: failure.time)))): \(failure.reason)")
            } else {
                lines.append(" \(failure.type): NodeTerminated (instance_id: \(failure.instanceID))")
            }
        }
        return lines
    }

    /// `used/total name` lines: placement-group resources folded into their base resource's line.
    private static func usageLines(totals: [String: Double], used: [String: Double], indent: String) -> [String] {
        var reserved: [String: (used: Double, total: Double)] = [:]
        for (name, total) in totals where BundleResources.isGroupResource(name) {
            // Only the wildcard `<res>_group_<pg>` counts (the indexed ones repeat it).
            guard let range = name.range(of: "_group_"), !name[range.upperBound...].contains("_") else { continue }
            let base = String(name[..<range.lowerBound])
            guard base != BundleResources.marker else { continue }
            reserved[base, default: (0, 0)].used += used[name] ?? 0
            reserved[base, default: (0, 0)].total += total
        }
        var lines: [String] = []
        for (name, total) in totals.sorted(by: { order($0.key) < order($1.key) })
        where !name.hasPrefix("node:") && !BundleResources.isGroupResource(name) && !name.hasPrefix("accelerator_type:") {
            let inUse = used[name] ?? 0
            var line = memoryNames.contains(name) ? "\(indent)\(memory(inUse))/\(memory(total)) \(name)" : "\(indent)\(inUse)/\(total) \(name)"
            if let group = reserved[name] { line += " (\(group.used) used of \(group.total) reserved in placement groups)" }
            lines.append(line)
        }
        return lines
    }

    /// `ray status -v`: each node's usage and what keeps it busy.
    private static func nodeDetails(_ cluster: Cluster, alive: [Ray_Rpc_GcsNodeInfo], reports: [Data: Ray_Rpc_ResourcesData]) -> [String] {
        var lines: [String] = []
        for node in alive {
            let entry = cluster.report?.nodes.first { $0.nodeID == Hex.string(node.nodeID) }
            let instance = entry?.instanceID ?? node.nodeManagerAddress
            lines += ["", "Node: \(instance) (\(entry?.type ?? "node_\(Hex.string(node.nodeID))"))", " Id: \(Hex.string(node.nodeID))"]
            guard let report = reports[node.nodeID] else {
                lines.append(" (no resource report yet)")
                continue
            }
            if report.isIdle { lines.append(" Idle: \(report.idleDurationMs) ms") }
            lines.append(" Usage:")
            var used: [String: Double] = [:]
            for (name, amount) in report.resourcesTotal where name != "object_store_memory" {
                used[name] = max(0, amount - (report.resourcesAvailable[name] ?? 0))
            }
            used["object_store_memory"] = Double(report.objectStoreUsedBytes)
            lines += usageLines(totals: report.resourcesTotal, used: used, indent: "  ")
            lines.append(" Activity:")
            var activity: [String] = []
            for (name, amount) in used.sorted(by: { order($0.key) < order($1.key) })
            where amount > 0 && !memoryNames.contains(name) && !name.hasPrefix("node:") && !BundleResources.isGroupResource(name) {
                activity.append("  Resource: \(name) currently in use.")
            }
            if !report.isIdle && activity.isEmpty { activity.append("  Busy workers on node.") }
            if report.isDraining { activity.append("  Draining: takes no new work.") }
            lines += activity.isEmpty ? ["  (no activity)"] : activity
        }
        return lines
    }

    private static let memoryNames: Set = ["memory", "object_store_memory"]

    /// A resource shape as Python prints a dict of floats: `{'CPU': 1.0, 'accel': 1.0}`.
    public static func pythonDict(_ shape: [String: Double]) -> String {
        "{" + shape.sorted { order($0.key) < order($1.key) }.map { "'\($0.key)': \($0.value)" }.joined(separator: ", ") + "}"
    }

    /// A group's bundles as Ray lists them: runs of equal bundles as `{…} * n`.
    public static func bundleList(_ bundles: [[String: Double]]) -> String {
        var parts: [(String, Int)] = []
        for bundle in bundles {
            let text = pythonDict(bundle)
            if let last = parts.last, last.0 == text { parts[parts.count - 1].1 += 1 } else { parts.append((text, 1)) }
        }
        return parts.map { $0.1 > 1 ? "\($0.0) * \($0.1)" : $0.0 }.joined(separator: ", ")
    }

    private static func strategyName(_ strategy: Ray_Rpc_PlacementStrategy) -> String {
        switch strategy {
        case .pack: "PACK"
        case .spread: "SPREAD"
        case .strictPack: "STRICT_PACK"
        case .strictSpread: "STRICT_SPREAD"
        default: "PACK"
        }
    }

    /// CPU and GPU first, then custom resources by name, then memory and the object store (Ray's order).
    private static func order(_ name: String) -> (Int, String) {
        switch name {
        case "CPU": (0, name)
        case "GPU": (1, name)
        case "memory": (3, name)
        case "object_store_memory": (4, name)
        default: (2, name)
        }
    }

    /// Ray's `format_memory`: `0B`, `1.21KiB`, `16.00GiB`.
    public static func memory(_ bytes: Double) -> String {
        if bytes > 1024 * 1024 * 1024 { return String(format: "%.2fGiB", bytes / (1024 * 1024 * 1024)) }
        if bytes > 1024 * 1024 { return String(format: "%.2fMiB", bytes / (1024 * 1024)) }
        if bytes > 1024 { return String(format: "%.2fKiB", bytes / 1024) }
        return "\(Int(bytes))B"
    }
}
