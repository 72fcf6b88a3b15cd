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
import RayServices

/// Where a batch of bundles is given back, and the reason the killed workers' exits give.
struct CancelKey: Hashable, Sendable {
    var node: NodeID
    var reason: String
}

/// Placing and reserving: each round places every waiting group that fits on the cluster's view
/// (each taking its share of the view before the next is placed), then reserves them all in two
/// phases with one prepare and one commit call per node. A group is all or nothing: one whose
/// bundles a node refused, or whose node failed, has what it got on the other nodes given back and
/// waits for the next change.
extension PlacementGroupManager {
    func kick() {
        if scheduling {
            again = true
            return
        }
        scheduling = true
        Task(executorPreference: ThreadExecutor.gcs) { await self.scheduleRounds() }
    }

    /// Rounds while something changed during the last one.
    private func scheduleRounds() async {
        repeat {
            again = false
            var view = await clusterView()
            var batch: [(PlacementGroupID, [Int: NodeID])] = []
            for id in queue {
                guard let data = groups[id], data.state == .pending || data.state == .rescheduling else { continue }
                let bundles = data.bundles.map { ResourceSet($0.unitResources) }
                var fixed: [Int: NodeID] = [:]
                for (index, bundle) in data.bundles.enumerated() where !bundle.nodeID.isEmpty {
                    if let node = try? NodeID(bytes: bundle.nodeID) { fixed[index] = node }
                }
                // Checked when the group was registered.
                let selectors = data.bundles.map { (try? LabelSelector($0.labelSelector)) ?? LabelSelector() }
                switch BundlePolicy.place(bundles, strategy: PlacementStrategy(data.strategy), fixed: fixed,
                                          selectors: selectors, in: view) {
                case .placed(let placement):
                    batch.append((id, placement))
                    for (index, node) in placement {
                        guard var entry = view[node] else { continue }
                        entry.available.subtract(bundles[index])
                        view.update(node, entry)
                    }
                case .noResources(let message):
                    await setWaiting(id, .noResources, message)
                case .infeasible(let message):
                    await setWaiting(id, .infeasible, message)
                }
            }
            // Nothing fits now: go again only if something changed meanwhile.
            guard !batch.isEmpty else { continue }
            let ids = Set(batch.map(\.0))
            queue.removeAll { ids.contains($0) }
            reserving.formUnion(ids)
            let failed = await reserve(batch)
            reserving.subtract(ids)
            // Those that failed wait, in their old order, for the next change (a report, a removal).
            let retry = batch.map(\.0).filter { id in
                failed.contains(id) && groups[id].map { $0.state == .pending || $0.state == .rescheduling } == true
            }
            for id in retry { groups[id]?.stats.schedulingState = .failedToCommitResources }
            queue.insert(contentsOf: retry, at: 0)
        } while again
        scheduling = false
    }

    func setWaiting(_ id: PlacementGroupID, _ schedulingState: Ray_Rpc_PlacementGroupStats.SchedulingState, _ message: String) async {
        guard var data = groups[id] else { return }
        data.stats.schedulingAttempt += 1
        guard data.stats.schedulingState != schedulingState || data.stats.message != message else {
            groups[id] = data
            return
        }
        data.stats.schedulingState = schedulingState
        data.stats.message = message
        groups[id] = data
        await state.publishPlacementGroup(data)
        if schedulingState == .infeasible, warned.insert(id).inserted { await warnInfeasible(data, message) }
    }

    /// Prepares every group's bundles on their nodes (one call per node), commits those of the
    /// groups every node accepted, and gives back what the others got. Returns the groups not created.
    private func reserve(_ batch: [(PlacementGroupID, [Int: NodeID])]) async -> Set<PlacementGroupID> {
        var byNode: [NodeID: [Ray_Rpc_Bundle]] = [:]
        var groupsOn: [NodeID: Set<PlacementGroupID>] = [:]
        for (id, placement) in batch {
            guard let data = groups[id] else { continue }
            for (index, node) in placement.sorted(by: { $0.key < $1.key }) {
                var bundle = data.bundles[index]
                bundle.nodeID = Data(node.bytes)
                byNode[node, default: []].append(bundle)
                groupsOn[node, default: []].insert(id)
            }
        }
        let nodes = Array(byNode.keys)
        let channels = await channels(for: nodes)
        let specs = byNode
        // Phase 1. nil: the node could not be asked (every group there fails).
        let prepared: [NodeID: Set<Data>?] = await forEachNode(nodes) { node -> Set<Data>? in
            guard let channel = channels[node] else { return nil }
            var request = Ray_Rpc_PrepareBundleResourcesRequest()
            request.bundleSpecs = specs[node]!
            guard let reply = try? await channel.unary(NodeManagerMethods.prepareBundleResources, request, options: CallOptions(timeout: .seconds(10))) else {
                return nil
            }
            return Set(reply.failedPlacementGroupIds)
        }
        var failed: Set<PlacementGroupID> = []
        for node in nodes {
            switch prepared[node] {
            case .some(.some(let refused)):
                for raw in refused { if let id = try? PlacementGroupID(bytes: raw) { failed.insert(id) } }
            default:
                failed.formUnion(groupsOn[node] ?? [])
            }
        }
        // Removed while it was being prepared: it gives back what it got too.
        for (id, _) in batch where groups[id]?.state == .removed { failed.insert(id) }
        // Phase 2, for the groups every node accepted.
        let toCommit = byNode.mapValues { bundles in bundles.filter { !failed.contains(Self.group(of: $0)) } }.filter { !$0.value.isEmpty }
        let committed: [NodeID: Bool] = await forEachNode(Array(toCommit.keys)) { node -> Bool in
            var request = Ray_Rpc_CommitBundleResourcesRequest()
            request.bundleSpecs = toCommit[node]!
            return (try? await channels[node]!.unary(NodeManagerMethods.commitBundleResources, request, options: CallOptions(timeout: .seconds(10)))) != nil
        }
        for (node, ok) in committed where !ok { failed.formUnion(groupsOn[node] ?? []) }
        // Give back what failed groups got on the nodes that said yes.
        var rollback: [Ray_Rpc_Bundle] = []
        for (node, bundles) in byNode {
            guard case .some(.some) = prepared[node] else { continue }
            rollback += bundles.filter { failed.contains(Self.group(of: $0)) }
        }
        if !rollback.isEmpty { await cancelNow(rollback, reason: "") }

        let alive = Set(await state.allNodes().filter { $0.state == .alive }.map(\.nodeID))
        var created: [GroupData] = []
        for (id, placement) in batch where !failed.contains(id) {
            guard var data = groups[id] else { continue }
            for (index, node) in placement { data.bundles[index].nodeID = Data(node.bytes) }
            // Bundles of a node that died while they were reserved are placed again.
            let lost = data.bundles.indices.filter { !data.bundles[$0].nodeID.isEmpty && !alive.contains(data.bundles[$0].nodeID) }
            if !lost.isEmpty {
                for index in lost { data.bundles[index].nodeID = Data() }
                data.state = .rescheduling
                groups[id] = data
                failed.insert(id)
                await state.publishPlacementGroup(data)
                continue
            }
            data.state = .created
            data.stats.schedulingState = .finished
            let now = Self.nowNanoseconds()
            data.stats.endToEndCreationLatencyUs = (now - min(now, data.stats.creationRequestReceivedNs)) / 1000
            groups[id] = data
            created.append(data)
        }
        await state.publishPlacementGroups(created)
        for data in created {
            guard let id = try? PlacementGroupID(bytes: data.placementGroupID) else { continue }
            for waiter in waiters.removeValue(forKey: id)?.values ?? [:].values { waiter.resume() }
        }
        return failed
    }

    private static func group(of bundle: Ray_Rpc_Bundle) -> PlacementGroupID {
        (try? PlacementGroupID(bytes: bundle.bundleID.placementGroupID)) ?? .nil
    }

    // MARK: giving bundles back

    /// Queues bundles to give back (their node is in each bundle) and sends them in batches, one
    /// call per node and reason, 2 ms after the first, without holding up the caller.
    func enqueueCancel(_ bundles: [Ray_Rpc_Bundle], reason: String) {
        Self.add(bundles, reason: reason, to: &cancels)
        guard !cancelling, !cancels.isEmpty else { return }
        cancelling = true
        Task(executorPreference: ThreadExecutor.gcs) { await self.flushCancels() }
    }

    private func flushCancels() async {
        // A moment for more removals to join the batch (a program removing its groups one by one).
        try? await ThreadExecutor.gcs.sleep(for: .milliseconds(2))
        while !cancels.isEmpty {
            let batch = cancels
            cancels = [:]
            await send(batch)
            // Freed resources may let waiting groups in (the nodes' reports say so too).
            if !queue.isEmpty { kick() }
        }
        cancelling = false
    }

    /// Gives bundles back and waits until every node answered (or could not be reached).
    private func cancelNow(_ bundles: [Ray_Rpc_Bundle], reason: String) async {
        var batch: [CancelKey: [Ray_Rpc_Bundle]] = [:]
        Self.add(bundles, reason: reason, to: &batch)
        await send(batch)
    }

    private static func add(_ bundles: [Ray_Rpc_Bundle], reason: String, to batch: inout [CancelKey: [Ray_Rpc_Bundle]]) {
        for bundle in bundles {
            guard let node = try? NodeID(bytes: bundle.nodeID) else { continue }
            batch[CancelKey(node: node, reason: reason), default: []].append(bundle)
        }
    }

    /// One CancelResourceReserve per node and reason, all at once.
    private func send(_ batch: [CancelKey: [Ray_Rpc_Bundle]]) async {
        let channels = await channels(for: Array(Set(batch.keys.map(\.node))))
        _ = await forEachKey(Array(batch.keys)) { key -> Bool in
            guard let channel = channels[key.node] else { return false }
            var request = Ray_Rpc_CancelResourceReserveRequest()
            request.bundleSpecs = batch[key]!
            request.reason = key.reason
            return (try? await channel.unary(NodeManagerMethods.cancelResourceReserve, request, options: CallOptions(timeout: .seconds(10)))) != nil
        }
    }

    // MARK: helpers

    private func forEachNode<R: Sendable>(_ nodes: [NodeID], _ body: @escaping @Sendable (NodeID) async -> R) async -> [NodeID: R] {
        await forEachKey(nodes, body)
    }

    private func forEachKey<K: Hashable & Sendable, R: Sendable>(_ keys: [K], _ body: @escaping @Sendable (K) async -> R) async -> [K: R] {
        if keys.isEmpty { return [:] }
        if keys.count == 1 { return [keys[0]: await body(keys[0])] }
        return await withTaskGroup(of: (K, R).self) { group in
            for key in keys { group.addTask(executorPreference: ThreadExecutor.gcs) { (key, await body(key)) } }
            var results: [K: R] = [:]
            for await (key, result) in group { results[key] = result }
            return results
        }
    }

    /// Raylet channels of live nodes among `nodes`.
    private func channels(for nodes: [NodeID]) async -> [NodeID: RPCChannel] {
        var result: [NodeID: RPCChannel] = [:]
        for info in await state.allNodes() where info.state == .alive {
            guard let id = try? NodeID(bytes: info.nodeID), nodes.contains(id) else { continue }
            result[id] = try? raylets.channel(to: info)
        }
        return result
    }

    /// Every live node's resources, from its newest report (or its registration).
    private func clusterView() async -> ClusterView {
        var view = ClusterView()
        let reports = Dictionary(await state.allResources().map { ($0.nodeID, $0) }, uniquingKeysWith: { a, _ in a })
        for info in await state.allNodes() where info.state == .alive {
            guard let id = try? NodeID(bytes: info.nodeID) else { continue }
            let total = ResourceSet(reports[info.nodeID]?.resourcesTotal ?? info.resourcesTotal)
            let available = reports[info.nodeID].map { ResourceSet($0.resourcesAvailable) } ?? total
            view.update(id, NodeResources(total: total, available: available, labels: info.labels,
                                          acceptsWork: reports[info.nodeID]?.isDraining != true))
        }
        return view
    }

    /// Tells the creator's driver once that its group cannot be placed on this cluster (it waits
    /// for nodes that can hold it to join).
    private func warnInfeasible(_ data: GroupData, _ message: String) async {
        guard let job = await state.allJobs().first(where: { $0.jobID == data.creatorJobID }), job.driverAddress.port > 0,
              let channel = try? RPCChannel(host: job.driverAddress.ipAddress, port: Int(job.driverAddress.port)) else { return }
        var batch = Ray_Rpc_WorkerLogLines()
        batch.pid = getpid()
        batch.isError = true
        let name = data.name.isEmpty ? "" : " '\(data.name)'"
        let id = (try? PlacementGroupID(bytes: data.placementGroupID))?.hex ?? "?"
        batch.lines = ["Warning: placement group\(name) \(id) cannot be created: \(message). It stays PENDING until nodes that can hold it join the cluster; `ray status` lists it among the pending demands."]
        var request = Ray_Rpc_PublishLogsRequest()
        request.batches = [batch]
        _ = try? await channel.unary(CoreWorkerMethods.publishLogs, request, options: CallOptions(timeout: .seconds(5)))
    }
}
