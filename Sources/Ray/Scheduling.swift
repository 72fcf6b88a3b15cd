#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayProtos

/// Where a task or actor may run (Ray's `scheduling_strategy`).
///
/// ```swift
/// let r = heavy.options(scheduling: .spread).remote(x)
/// let a = try await ray.actor(Shard.self, args: 3, options: ActorOptions(scheduling: .nodeAffinity(id, soft: false)))
/// ```
public enum SchedulingStrategy: Sendable, Hashable {
    /// Ray's default (hybrid) policy: the local node while it is less than half used, then the
    /// least loaded node that has the resources.
    case `default`
    /// Round robin over the nodes that have the resources (Ray's "SPREAD").
    case spread
    /// Only that node (`soft: false`: if it is gone or too small the task fails with
    /// `TaskUnschedulableError`), or that node while it is alive and free, else the default policy
    /// (`soft: true`). Ray's `NodeAffinitySchedulingStrategy`.
    case nodeAffinity(NodeID, soft: Bool)
    /// In bundle `bundleIndex` of the group (−1: any bundle), using that bundle's resources (Ray's
    /// `PlacementGroupSchedulingStrategy`). With `captureChildTasks`, the tasks and actors it starts
    /// without a strategy of their own go into the group too. An index outside the group's bundles
    /// is a programming error.
    case placementGroup(PlacementGroup, bundleIndex: Int = -1, captureChildTasks: Bool = false)

    var proto: Ray_Rpc_SchedulingStrategy {
        var strategy = Ray_Rpc_SchedulingStrategy()
        switch self {
        case .default: break
        case .spread: strategy.spreadSchedulingStrategy = Ray_Rpc_SpreadSchedulingStrategy()
        case .nodeAffinity(let node, let soft):
            var affinity = Ray_Rpc_NodeAffinitySchedulingStrategy()
            affinity.nodeID = Data(node.bytes)
            affinity.soft = soft
            strategy.nodeAffinitySchedulingStrategy = affinity
        case .placementGroup(let group, let index, let capture):
            precondition(index >= -1 && index < group.bundles.count,
                         "bundleIndex \(index) is not -1 or a bundle of \(group) (0..<\(group.bundles.count))")
            var placement = Ray_Rpc_PlacementGroupSchedulingStrategy()
            placement.placementGroupID = Data(group.id.bytes)
            placement.placementGroupBundleIndex = Int64(index)
            placement.placementGroupCaptureChildTasks = capture
            strategy.placementGroupSchedulingStrategy = placement
        }
        return strategy
    }
}

/// A node of the cluster, as `ray.nodes()` lists it.
public struct NodeInfo: Sendable, Hashable {
    public let id: NodeID
    /// The address its raylet (and its workers) listen on.
    public let address: String
    public let rayletPort: Int
    public let isAlive: Bool
    public let isHead: Bool
    /// What it offers in all ("CPU", "memory", "object_store_memory", custom ones).
    public let resources: [String: Double]
    /// Ray's own (`ray.io/node-id`) and the ones it was started with.
    public let labels: [String: String]
    /// Why it died (empty while it lives).
    public let deathReason: String

    init(_ info: Ray_Rpc_GcsNodeInfo) {
        id = (try? NodeID(bytes: info.nodeID)) ?? .nil
        address = info.nodeManagerAddress
        rayletPort = Int(info.nodeManagerPort)
        isAlive = info.state == .alive
        isHead = info.isHeadNode
        resources = info.resourcesTotal
        labels = info.labels.filter { $0.key != "ray.io/object-store" }
        deathReason = info.deathReason
    }
}
