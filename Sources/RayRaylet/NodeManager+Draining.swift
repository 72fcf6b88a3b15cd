import RayProtos
import RayScheduling

extension NodeManager {
    /// Nothing leased, nothing waiting, no bundle reserved: the autoscaler may end the node.
    var isIdle: Bool {
        pending.isEmpty && bundles.isEmpty && !workers.values.contains { if case .leased = $0.state { true } else { false } }
    }

    /// Ray's DrainRaylet: from now on this node takes no new work (the scheduling policy sends it
    /// elsewhere, other raylets and the GCS see the node as draining in its reports); running work
    /// finishes. An idle termination is refused unless the node is idle now, so the autoscaler never
    /// ends a node that took a lease after it last looked.
    func drain(_ request: Ray_Rpc_DrainRayletRequest) -> Ray_Rpc_DrainRayletReply {
        var reply = Ray_Rpc_DrainRayletReply()
        if request.reason == .idleTermination, !isIdle {
            reply.rejectionReasonMessage = "node \(nodeID.hex) is not idle: \(activity())"
            return reply
        }
        reply.isAccepted = true
        guard !draining else { return reply }
        draining = true
        view.update(nodeID, NodeResources(total: total, available: available, labels: labels, acceptsWork: false))
        reportResourcesIfChanged()
        // Waiting leases (only possible for a preemption) look for another node.
        schedule()
        return reply
    }

    /// What keeps the node busy, in Ray's `ray status -v` words.
    func activity() -> String {
        var parts: [String] = []
        let leased = workers.values.filter { if case .leased = $0.state { true } else { false } }.count
        if leased > 0 { parts.append("Busy workers on node (\(leased)).") }
        if !pending.isEmpty { parts.append("\(pending.count) lease request(s) waiting.") }
        if !bundles.isEmpty { parts.append("\(bundles.count) placement-group bundle(s) reserved.") }
        return parts.isEmpty ? "(no activity)" : parts.joined(separator: " ")
    }
}
