import ArgumentParser
import Foundation
import RayGCSClient
import RayProtos

/// `ray status`: the cluster's nodes, resource usage and pending demand, in the layout of Ray 2.60's
/// `ray status` (its autoscaler's status text), from the GCS's node table and resource view.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the nodes, resources and pending demand of a cluster.")

    @Option(help: "The GCS address (default $RAY_ADDRESS, then the cluster `ray start` started).")
    var address: String?

    @Option(name: .customLong("temp-dir"), help: "Where sessions are (default $RAY_TMPDIR or /tmp/swift-ray).")
    var tempDir: String?

    func run() async throws {
        let temp = Session.tempDirectory(tempDir)
        guard let target = address ?? ProcessInfo.processInfo.environment["RAY_ADDRESS"]
            ?? (try? String(contentsOf: Session.currentClusterFile(in: temp), encoding: .utf8))
        else { throw CLIError("no cluster: start one with `ray start --head` or pass --address") }
        let nodes: [Ray_Rpc_GcsNodeInfo]
        let view: [Ray_Rpc_ResourcesData]
        do {
            let gcs = try GCSClient(address: target, timeout: .seconds(5))
            nodes = try await gcs.nodes()
            view = try await gcs.resourceUsage()
        } catch {
            throw CLIError("cannot reach the GCS at \(target): \(error)")
        }
        print(Self.format(nodes: nodes, view: view, at: Date()))
    }

    static func format(nodes: [Ray_Rpc_GcsNodeInfo], view: [Ray_Rpc_ResourcesData], at time: Date) -> String {
        let stamp = DateFormatter()
        stamp.dateFormat = "yyyy-MM-dd HH:mm:ss.SSSSSS"
        let header = "======== Autoscaler status: \(stamp.string(from: time)) ========"
        let rule = String(repeating: "-", count: header.count)
        var lines = [header, "Node status", rule, "Active:"]
        let alive = nodes.filter { $0.state == .alive }
        let dead = nodes.filter { $0.state == .dead }
        if alive.isEmpty { lines.append(" (no active nodes)") }
        for node in alive { lines.append(" 1 node_\(node.nodeID.hex)") }
        lines += ["Pending:", " (no pending nodes)", "Recent failures:"]
        if dead.isEmpty { lines.append(" (no failures)") }
        for node in dead { lines.append(" node_\(node.nodeID.hex): NodeTerminated (ip: \(node.nodeManagerAddress))") }

        var totals: [String: Double] = [:]
        var used: [String: Double] = [:]
        var demand: [String: Int] = [:]
        var unreported: [String] = []
        for node in alive {
            for (name, amount) in node.resourcesTotal { totals[name, default: 0] += amount }
            guard let report = view.first(where: { $0.nodeID == node.nodeID }) else {
                unreported.append("\(node.nodeManagerAddress):\(node.nodeManagerPort)")
                continue
            }
            for (name, amount) in node.resourcesTotal where name != "object_store_memory" {
                used[name, default: 0] += max(0, amount - (report.resourcesAvailable[name] ?? 0))
            }
            used["object_store_memory", default: 0] += Double(report.objectStoreUsedBytes)
            for entry in report.resourceLoad {
                let shape = entry.shape.sorted { $0.key < $1.key }.map { "'\($0.key)': \($0.value)" }.joined(separator: ", ")
                demand["{\(shape)}", default: 0] += Int(entry.count)
            }
        }
        lines += ["", "Resources", rule, "Total Usage:"]
        let memoryNames: Set = ["memory", "object_store_memory"]
        for (name, total) in totals.sorted(by: { Self.order($0.key) < Self.order($1.key) }) where !name.hasPrefix("node:") {
            let inUse = used[name] ?? 0
            if memoryNames.contains(name) {
                lines.append(" \(memory(inUse))/\(memory(total)) \(name)")
            } else {
                lines.append(" \(inUse)/\(total) \(name)")
            }
        }
        lines += ["", "From request_resources:", " (none)", "Pending Demands:"]
        if demand.isEmpty { lines.append(" (no resource demands)") }
        for (shape, count) in demand.sorted(by: { $0.key < $1.key }) { lines.append(" \(shape): \(count)+ pending tasks/actors") }
        if !unreported.isEmpty { lines.append("(no resource report yet from: \(unreported.joined(separator: ", ")))") }
        return lines.joined(separator: "\n")
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
    static func memory(_ bytes: Double) -> String {
        if bytes > 1024 * 1024 * 1024 { return String(format: "%.2fGiB", bytes / (1024 * 1024 * 1024)) }
        if bytes > 1024 * 1024 { return String(format: "%.2fMiB", bytes / (1024 * 1024)) }
        if bytes > 1024 { return String(format: "%.2fKiB", bytes / 1024) }
        return "\(Int(bytes))B"
    }
}

extension Data {
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}
