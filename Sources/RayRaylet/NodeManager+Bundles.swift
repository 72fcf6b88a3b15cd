#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import RayCommon
import RayConcurrency
import RayProtos
import RayRPC
import RayScheduling

/// One bundle of a placement group, as this node knows it.
struct BundleKey: Hashable, Sendable, CustomStringConvertible {
    var group: PlacementGroupID
    var index: Int
    var description: String { "bundle \(index) of placement group \(group.hex)" }
}

struct ReservedBundle: Sendable {
    /// The bundle's own amounts (taken from what the node has free when it was prepared).
    var resources: ResourceSet
    /// Committed: its named resources are on the node for the group's work to use.
    var committed = false
}

/// Placement-group bundles on this node, in Ray's two phases: the GCS prepares bundles on every
/// node it chose (their resources are set aside), then commits them all (their named resources
/// appear) or cancels the prepared ones if any node refused. Cancelling a committed bundle (the
/// group was removed) kills the workers leased with its resources and fails the leases waiting for it.
extension NodeManager {
    static func bundle(_ spec: Ray_Rpc_Bundle) throws(RPCError) -> (BundleKey, ResourceSet) {
        let group = try PlacementGroupID(spec.bundleID.placementGroupID, field: "bundle_id.placement_group_id")
        guard spec.bundleID.bundleIndex >= 0 else {
            throw RPCError(code: .invalidArgument, message: "bundle index \(spec.bundleID.bundleIndex) of placement group \(group.hex) is negative")
        }
        if let bad = spec.unitResources.first(where: { $0.value < 0 || !$0.value.isFinite }) {
            throw RPCError(code: .invalidArgument, message: "bundle \(spec.bundleID.bundleIndex) of placement group \(group.hex): resource \(bad.key) cannot be \(bad.value)")
        }
        return (BundleKey(group: group, index: Int(spec.bundleID.bundleIndex)), ResourceSet(spec.unitResources))
    }

    /// The placement group a lease is asked for, if any.
    static func placementGroup(of request: Ray_Rpc_RequestWorkerLeaseRequest) throws(RPCError) -> PlacementGroupID? {
        guard case .placementGroupSchedulingStrategy(let strategy) = request.schedulingStrategy.strategy else { return nil }
        return try PlacementGroupID(strategy.placementGroupID, field: "scheduling_strategy.placement_group.placement_group_id")
    }

    static func groupRemovedReply(_ group: PlacementGroupID, _ name: String) -> Ray_Rpc_RequestWorkerLeaseReply {
        var reply = Ray_Rpc_RequestWorkerLeaseReply()
        reply.unschedulable = true
        reply.placementGroupRemoved = true
        reply.message = "\(name) cannot be scheduled: its placement group \(group.hex) was removed"
        return reply
    }

    /// Sets the bundles' resources aside, each group's all or none (groups in the order they come);
    /// already prepared bundles count as done. The reply names the groups that did not fit.
    func prepareBundles(_ specs: [Ray_Rpc_Bundle]) throws(RPCError) -> Ray_Rpc_PrepareBundleResourcesReply {
        var byGroup: [(PlacementGroupID, [(BundleKey, ResourceSet)])] = []
        for spec in specs {
            let (key, resources) = try Self.bundle(spec)
            if let index = byGroup.firstIndex(where: { $0.0 == key.group }) {
                byGroup[index].1.append((key, resources))
            } else {
                byGroup.append((key.group, [(key, resources)]))
            }
        }
        var reply = Ray_Rpc_PrepareBundleResourcesReply()
        var prepared = false
        for (group, entries) in byGroup {
            var need = ResourceSet()
            var fresh: [(BundleKey, ResourceSet)] = []
            for (key, resources) in entries where bundles[key] == nil && !fresh.contains(where: { $0.0 == key }) {
                need.add(resources)
                fresh.append((key, resources))
            }
            guard !removedGroups.contains(group), available.covers(need) else {
                reply.failedPlacementGroupIds.append(Data(group.bytes))
                if reply.message.isEmpty {
                    reply.message = removedGroups.contains(group) ? "placement group \(group.hex) was removed"
                        : "node \(nodeID.hex) has \(available.filter { need[$0] > 0 }) free, placement group \(group.hex) needs \(need)"
                }
                continue
            }
            available.subtract(need)
            for (key, resources) in fresh { bundles[key] = ReservedBundle(resources: resources) }
            prepared = prepared || !fresh.isEmpty
        }
        reply.success = reply.failedPlacementGroupIds.isEmpty
        if prepared { reportSoon() }
        return reply
    }

    /// Makes prepared bundles usable (their named resources appear); a bundle never prepared here is
    /// FAILED_PRECONDITION.
    func commitBundles(_ specs: [Ray_Rpc_Bundle]) throws(RPCError) {
        var keys: [BundleKey] = []
        for spec in specs {
            let (key, _) = try Self.bundle(spec)
            guard bundles[key] != nil else {
                throw RPCError(code: .failedPrecondition, message: "\(key) was not prepared on node \(nodeID.hex)")
            }
            keys.append(key)
        }
        var added = ResourceSet()
        for key in keys where bundles[key]?.committed == false {
            bundles[key]!.committed = true
            added.add(BundleResources.committed(bundles[key]!.resources, index: key.index, of: key.group))
        }
        total.add(added)
        available.add(added)
        reportSoon()
        schedule()
    }

    /// Gives the bundles back. For committed ones, the workers leased with their group's resources
    /// are killed (`reason` is their exit's), and leases waiting for the group fail when none of its
    /// bundles is left here. Unknown bundles are skipped (a cancel may come twice).
    func cancelBundles(_ specs: [Ray_Rpc_Bundle], reason: String) throws(RPCError) {
        var keys: [BundleKey] = []
        for spec in specs { keys.append(try Self.bundle(spec).0) }
        var groups: Set<PlacementGroupID> = []
        var removed = ResourceSet()
        var freed = ResourceSet()
        for key in keys {
            guard let bundle = bundles.removeValue(forKey: key) else { continue }
            freed.add(bundle.resources)
            if bundle.committed {
                groups.insert(key.group)
                removed.add(BundleResources.committed(bundle.resources, index: key.index, of: key.group))
            }
        }
        for group in groups { killWorkers(in: group, reason: reason.isEmpty ? "its placement group \(group.hex) was removed" : reason) }
        // What the killed workers held is back in `available`: take the named resources away for good.
        var newTotal = total
        var newAvailable = available
        newTotal.subtract(removed)
        newAvailable.subtract(removed)
        newAvailable.add(freed)
        let names = removed.amounts.keys
        newTotal.dropEmpty(names)
        newAvailable.dropEmpty(names)
        total = newTotal
        available = newAvailable
        for group in groups where !bundles.keys.contains(where: { $0.group == group }) { failLeases(in: group) }
        reportSoon()
        schedule()
    }

    /// Reports the node's resources after a bundle change: at once if the last such report is
    /// 50 ms old, else when it will be, once for however many changes came meanwhile (each report
    /// carries every bundle's named resources and goes to every raylet: a report per change cost
    /// more than the changes; Ray's raylets report every 100 ms).
    func reportSoon() {
        guard !reportScheduled else { return }
        let due = lastBundleReport + .milliseconds(50)
        if due <= .now {
            reportNow()
            return
        }
        reportScheduled = true
        Task(executorPreference: ThreadExecutor.raylet) {
            try? await ThreadExecutor.raylet.sleep(until: due)
            await self.reportNow()
        }
    }

    private func reportNow() {
        reportScheduled = false
        lastBundleReport = .now
        reportResourcesIfChanged()
    }

    /// Leases waiting here for a group with no bundle on this node ask the GCS about their group
    /// (the reaper calls this every 250 ms): those of a removed group fail. (Leases for bundles on
    /// this node fail when the GCS gives the bundles back.)
    func failLeasesOfRemovedGroups() async {
        let waiting = Set(pending.compactMap { lease in lease.infeasible ? lease.placementGroup : nil })
            .filter { group in !bundles.keys.contains { $0.group == group } }
        for group in waiting where !removedGroups.contains(group) {
            if let data = await groupInfo(group), data.state == .removed { placementGroupRemoved(group) }
        }
    }

    /// A group is removed: leases waiting here for it fail, and later ones too.
    func placementGroupRemoved(_ group: PlacementGroupID) {
        guard removedGroups.insert(group).inserted else { return }
        failLeases(in: group)
    }

    private func killWorkers(in group: PlacementGroupID, reason: String) {
        for (id, worker) in workers {
            guard case .leased(let resources, _) = worker.state,
                  resources.amounts.keys.contains(where: { BundleResources.belongs($0, to: group) }) else { continue }
            workers[id]?.killReason = reason
            stopLeasing(id)
            worker.process.signal(SIGKILL)
        }
    }

    private func failLeases(in group: PlacementGroupID) {
        pending.removeAll { lease in
            guard lease.placementGroup == group else { return false }
            lease.continuation.resume(returning: Self.groupRemovedReply(group, lease.schedulingClassName))
            return true
        }
    }
}
