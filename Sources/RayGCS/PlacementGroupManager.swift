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

/// The GCS's placement groups (Ray's GcsPlacementGroupManager and its scheduler): it keeps the
/// table, places the groups waiting for resources with ``BundlePolicy`` on the cluster's view, and
/// reserves each in two phases, preparing its bundles on every chosen raylet and committing them
/// only if all agreed (else cancelling the prepared ones), so a group is all or nothing. States go
/// PENDING → CREATED → REMOVED, and RESCHEDULING while bundles lost with a node are placed again.
/// Groups that fit together are placed in one round and reserved at once. Runs on the GCS's thread.
actor PlacementGroupManager {
    nonisolated var unownedExecutor: UnownedSerialExecutor { ThreadExecutor.gcs.asUnownedSerialExecutor() }
    typealias GroupData = Ray_Rpc_PlacementGroupTableData

    private let state: GCSState
    private var groups: [PlacementGroupID: GroupData] = [:]
    private var order: [PlacementGroupID] = []
    /// "namespace/name" of groups not REMOVED.
    private var named: [String: PlacementGroupID] = [:]
    /// Groups waiting to be placed, oldest first (rescheduled ones go first).
    private var queue: [PlacementGroupID] = []
    /// Groups being reserved now (out of the queue meanwhile).
    private var reserving: Set<PlacementGroupID> = []
    private var waiters: [PlacementGroupID: [Int: CheckedContinuation<Void, any Error>]] = [:]
    private var nextWaiter = 0
    private var raylets: [NodeID: RPCChannel] = [:]
    private var scheduling = false
    private var again = false
    /// Drivers already warned that their group cannot be placed anywhere.
    private var warned: Set<PlacementGroupID> = []
    /// Removed groups kept in the table (Ray keeps a bounded history of dead groups too).
    private let removedLimit = 10_000

    init(state: GCSState) { self.state = state }

    private static func nameKey(_ namespace: String, _ name: String) -> String { "\(namespace)/\(name)" }

    // MARK: creation and removal

    func create(_ spec: GroupData) async throws(RPCError) {
        let id = try PlacementGroupID(spec.placementGroupID, field: "placement_group_id")
        _ = try JobID(spec.creatorJobID, field: "creator_job_id")
        try Self.validate(spec.bundles, strategy: spec.strategy)
        guard groups[id] == nil else { throw RPCError(code: .alreadyExists, message: "placement group \(id.hex) already exists") }
        if !spec.name.isEmpty {
            let key = Self.nameKey(spec.rayNamespace, spec.name)
            guard named[key] == nil else {
                throw RPCError(code: .alreadyExists, message: "Failed to create placement group '\(spec.name)' because name already exists in namespace '\(spec.rayNamespace)'.")
            }
            named[key] = id
        }
        var data = spec
        data.state = .pending
        for index in data.bundles.indices {
            data.bundles[index].bundleID.placementGroupID = spec.placementGroupID
            data.bundles[index].bundleID.bundleIndex = Int32(index)
            data.bundles[index].nodeID = Data()
        }
        data.stats = Ray_Rpc_PlacementGroupStats()
        data.stats.creationRequestReceivedNs = Self.nowNanoseconds()
        data.stats.schedulingState = .queued
        groups[id] = data
        order.append(id)
        queue.append(id)
        await state.publishPlacementGroup(data)
        kick()
    }

    /// Ray's checks: at least one bundle; each with some resource above zero; none negative.
    static func validate(_ bundles: [Ray_Rpc_Bundle], strategy: Ray_Rpc_PlacementStrategy) throws(RPCError) {
        guard !bundles.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "The placement group `bundles` argument cannot contain an empty list")
        }
        if case .UNRECOGNIZED(let value) = strategy {
            throw RPCError(code: .invalidArgument, message: "unknown placement strategy \(value); use PACK, SPREAD, STRICT_PACK or STRICT_SPREAD")
        }
        for (index, bundle) in bundles.enumerated() {
            if let bad = bundle.unitResources.first(where: { $0.value < 0 || !$0.value.isFinite }) {
                throw RPCError(code: .invalidArgument, message: "bundle \(index): resource \(bad.key) cannot be \(bad.value)")
            }
            if let bad = bundle.unitResources.keys.first(where: { $0.isEmpty || BundleResources.isGroupResource($0) }) {
                throw RPCError(code: .invalidArgument, message: "bundle \(index): '\(bad)' is not a resource a bundle can ask for")
            }
            guard bundle.unitResources.values.contains(where: { $0 > 0 }) else {
                throw RPCError(code: .invalidArgument, message: "Bundles cannot be an empty dictionary or resources with only 0 values. Bundle \(index) is \(ResourceSet(bundle.unitResources).rayDescription)")
            }
        }
    }

    /// Removes a group: its bundles are given back on every node (the workers using them killed),
    /// waiting leases for it fail (the raylets hear it on the placement-group channel), and
    /// `ready()` fails if it was not created yet. Removing a removed group is a no-op.
    func remove(_ raw: Data, reason: String = "") async throws(RPCError) {
        let id = try PlacementGroupID(raw, field: "placement_group_id")
        guard var data = groups[id] else { throw RPCError(code: .notFound, message: "no placement group \(id.hex)") }
        guard data.state != .removed else { return }
        let placed = data.bundles.filter { !$0.nodeID.isEmpty }
        data.state = .removed
        data.stats.schedulingState = .removed
        for index in data.bundles.indices { data.bundles[index].nodeID = Data() }
        groups[id] = data
        queue.removeAll { $0 == id }
        if !data.name.isEmpty { named[Self.nameKey(data.rayNamespace, data.name)] = nil }
        await state.publishPlacementGroup(data)
        for waiter in waiters.removeValue(forKey: id)?.values ?? [:].values {
            waiter.resume(throwing: RPCError(code: .failedPrecondition, message: "placement group \(id.hex) was removed before it was created"))
        }
        await cancel(placed, reason: reason.isEmpty ? "its placement group \(id.hex) was removed" : reason)
        forgetOldRemoved()
        kick()
    }

    private func forgetOldRemoved() {
        let removed = order.filter { groups[$0]?.state == .removed }
        guard removed.count > removedLimit else { return }
        let drop = Set(removed.prefix(removed.count - removedLimit))
        for id in drop { groups[id] = nil }
        order.removeAll { drop.contains($0) }
    }

    // MARK: queries

    func group(_ raw: Data) throws(RPCError) -> GroupData {
        let id = try PlacementGroupID(raw, field: "placement_group_id")
        guard let data = groups[id] else { throw RPCError(code: .notFound, message: "no placement group \(id.hex)") }
        return data
    }

    func namedGroup(_ name: String, namespace: String) throws(RPCError) -> GroupData {
        guard !name.isEmpty else { throw RPCError(code: .invalidArgument, message: "an empty placement group name") }
        guard let id = named[Self.nameKey(namespace, name)], let data = groups[id] else {
            throw RPCError(code: .notFound, message: "no placement group named '\(name)' in namespace '\(namespace)'")
        }
        return data
    }

    func all(limit: Int) -> (groups: [GroupData], total: Int) {
        let list = order.compactMap { groups[$0] }
        return (limit > 0 ? Array(list.prefix(limit)) : list, list.count)
    }

    /// Returns once the group is CREATED; throws if it is removed first, or at `deadline`.
    func waitUntilReady(_ raw: Data, deadline: ContinuousClock.Instant?) async throws {
        let id = try PlacementGroupID(raw, field: "placement_group_id")
        guard let data = groups[id] else { throw RPCError(code: .notFound, message: "no placement group \(id.hex)") }
        if data.state == .created { return }
        if data.state == .removed {
            throw RPCError(code: .failedPrecondition, message: "placement group \(id.hex) was removed before it was created")
        }
        let key = nextWaiter
        nextWaiter += 1
        // Answer just before the caller's deadline, so it hears DEADLINE_EXCEEDED from us.
        let timer = deadline.map { deadline in
            let wait = max(.zero, deadline - .now - .milliseconds(50))
            return ThreadExecutor.gcs.schedule(after: wait) { [weak self] in
                Task(executorPreference: ThreadExecutor.gcs) { await self?.expireWaiter(id, key) }
            }
        }
        defer { if let timer { _ = ThreadExecutor.gcs.cancel(timer) } }
        try await withCheckedThrowingContinuation { continuation in
            waiters[id, default: [:]][key] = continuation
        }
    }

    private func expireWaiter(_ id: PlacementGroupID, _ key: Int) {
        waiters[id]?.removeValue(forKey: key)?.resume(throwing: RPCError(code: .deadlineExceeded, message: "placement group \(id.hex) is not created yet"))
    }

    // MARK: events

    /// Resources changed or a node joined: waiting groups may fit now.
    func resourcesChanged() { if !queue.isEmpty { kick() } }

    /// A node died: the bundles it held are placed again (RESCHEDULING); the work in them died with it.
    func nodeDied(_ raw: Data) async {
        var changed: [PlacementGroupID] = []
        for (id, data) in groups where data.state != .removed && data.bundles.contains(where: { $0.nodeID == raw }) {
            var updated = data
            for index in updated.bundles.indices where updated.bundles[index].nodeID == raw { updated.bundles[index].nodeID = Data() }
            updated.state = .rescheduling
            updated.stats.schedulingState = .queued
            groups[id] = updated
            changed.append(id)
            await state.publishPlacementGroup(updated)
        }
        if let id = try? NodeID(bytes: raw) { raylets[id] = nil }
        // Rescheduled groups go first, oldest first.
        let sorted = changed.sorted { (order.firstIndex(of: $0) ?? 0) < (order.firstIndex(of: $1) ?? 0) }
        queue.removeAll { changed.contains($0) }
        queue.insert(contentsOf: sorted.filter { !reserving.contains($0) }, at: 0)
        kick()
    }

    /// A job ended: the groups it created that are not detached go (Ray removes them too).
    func jobFinished(_ raw: Data) async {
        for id in order where groups[id]?.creatorJobID == raw && groups[id]?.isDetached == false && groups[id]?.state != .removed {
            groups[id]?.creatorJobDead = true
            let job = (try? JobID(bytes: raw)).map { "\($0)" } ?? "?"
            try? await remove(Data(id.bytes), reason: "its placement group \(id.hex) was removed: its creator, job \(job), finished")
        }
    }

    // MARK: scheduling

    private func kick() {
        if scheduling {
            again = true
            return
        }
        scheduling = true
        Task(executorPreference: ThreadExecutor.gcs) { await self.scheduleRounds() }
    }

    /// Places every waiting group that fits, reserves them all at once, and goes again while
    /// something changed meanwhile.
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
                switch BundlePolicy.place(bundles, strategy: PlacementStrategy(data.strategy), fixed: fixed, in: view) {
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
            let outcomes = await withTaskGroup(of: (PlacementGroupID, Bool).self) { group in
                for (id, placement) in batch {
                    let bundles = groups[id]!.bundles
                    group.addTask(executorPreference: ThreadExecutor.gcs) { (id, await self.reserve(id, bundles, placement)) }
                }
                var outcomes: [PlacementGroupID: Bool] = [:]
                for await (id, ok) in group { outcomes[id] = ok }
                return outcomes
            }
            reserving.subtract(ids)
            // Those that failed (a node refused or died) wait in their old order for the next change.
            let failed = batch.map(\.0).filter { outcomes[$0] == false && groups[$0].map { $0.state != .removed && $0.state != .created } == true }
            queue.insert(contentsOf: failed, at: 0)
            if !failed.isEmpty {
                for id in failed { groups[id]?.stats.schedulingState = .failedToCommitResources }
            }
        } while again
        scheduling = false
    }

    private func setWaiting(_ id: PlacementGroupID, _ schedulingState: Ray_Rpc_PlacementGroupStats.SchedulingState, _ message: String) async {
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

    /// Prepares the bundles on their nodes, then commits them all; on any failure cancels what was
    /// prepared. True if the group is CREATED (or RESCHEDULING is over).
    private func reserve(_ id: PlacementGroupID, _ bundles: [Ray_Rpc_Bundle], _ placement: [Int: NodeID]) async -> Bool {
        var byNode: [NodeID: [Ray_Rpc_Bundle]] = [:]
        for (index, node) in placement {
            var bundle = bundles[index]
            bundle.nodeID = Data(node.bytes)
            byNode[node, default: []].append(bundle)
        }
        let nodes = Array(byNode.keys)
        let channels = await channels(for: nodes)
        let perNode = byNode
        let prepared = await forEachNode(nodes) { node in
            guard let channel = channels[node] else { return false }
            var request = Ray_Rpc_PrepareBundleResourcesRequest()
            request.bundleSpecs = perNode[node]!
            let reply = try? await channel.unary(NodeManagerMethods.prepareBundleResources, request, options: CallOptions(timeout: .seconds(10)))
            return reply?.success == true
        }
        let allPrepared = prepared.count == nodes.count && prepared.values.allSatisfy { $0 }
        var committed: [NodeID: Bool] = [:]
        if allPrepared, groups[id]?.state != .removed {
            committed = await forEachNode(nodes) { node in
                var request = Ray_Rpc_CommitBundleResourcesRequest()
                request.bundleSpecs = perNode[node]!
                return (try? await channels[node]!.unary(NodeManagerMethods.commitBundleResources, request, options: CallOptions(timeout: .seconds(10)))) != nil
            }
        }
        let success = allPrepared && committed.count == nodes.count && committed.values.allSatisfy { $0 }
        guard success, var data = groups[id], data.state != .removed else {
            // Roll back every node that said yes (a removed group gives back what it got too).
            let toCancel = nodes.filter { prepared[$0] == true }.flatMap { byNode[$0]! }
            await cancel(toCancel, reason: "placement group \(id.hex) could not be reserved on every node")
            return false
        }
        for (index, node) in placement { data.bundles[index].nodeID = Data(node.bytes) }
        // Bundles of a node that died while they were reserved are placed again.
        let alive = Set(await state.allNodes().filter { $0.state == .alive }.map(\.nodeID))
        let lost = data.bundles.indices.filter { !data.bundles[$0].nodeID.isEmpty && !alive.contains(data.bundles[$0].nodeID) }
        if !lost.isEmpty {
            for index in lost { data.bundles[index].nodeID = Data() }
            data.state = .rescheduling
            groups[id] = data
            await state.publishPlacementGroup(data)
            return false
        }
        data.state = .created
        data.stats.schedulingState = .finished
        let now = Self.nowNanoseconds()
        data.stats.endToEndCreationLatencyUs = (now - min(now, data.stats.creationRequestReceivedNs)) / 1000
        groups[id] = data
        await state.publishPlacementGroup(data)
        for waiter in waiters.removeValue(forKey: id)?.values ?? [:].values { waiter.resume() }
        return true
    }

    /// Gives bundles back on their nodes (those whose node is gone are gone with it).
    private func cancel(_ bundles: [Ray_Rpc_Bundle], reason: String) async {
        var byNode: [NodeID: [Ray_Rpc_Bundle]] = [:]
        for bundle in bundles {
            guard let node = try? NodeID(bytes: bundle.nodeID) else { continue }
            byNode[node, default: []].append(bundle)
        }
        guard !byNode.isEmpty else { return }
        let channels = await channels(for: Array(byNode.keys))
        let perNode = byNode
        _ = await forEachNode(Array(byNode.keys)) { node in
            guard let channel = channels[node] else { return false }
            var request = Ray_Rpc_CancelResourceReserveRequest()
            request.bundleSpecs = perNode[node]!
            request.reason = reason
            return (try? await channel.unary(NodeManagerMethods.cancelResourceReserve, request, options: CallOptions(timeout: .seconds(10)))) != nil
        }
    }

    private func forEachNode(_ nodes: [NodeID], _ body: @escaping @Sendable (NodeID) async -> Bool) async -> [NodeID: Bool] {
        if nodes.count == 1 { return [nodes[0]: await body(nodes[0])] }
        return await withTaskGroup(of: (NodeID, Bool).self) { group in
            for node in nodes { group.addTask(executorPreference: ThreadExecutor.gcs) { (node, await body(node)) } }
            var results: [NodeID: Bool] = [:]
            for await (node, ok) in group { results[node] = ok }
            return results
        }
    }

    /// Raylet channels of live nodes among `nodes`.
    private func channels(for nodes: [NodeID]) async -> [NodeID: RPCChannel] {
        var result: [NodeID: RPCChannel] = [:]
        var missing = nodes.filter { raylets[$0] == nil }
        if !missing.isEmpty {
            let infos = await state.allNodes().filter { $0.state == .alive }
            for info in infos {
                guard let id = try? NodeID(bytes: info.nodeID), missing.contains(id),
                      let channel = try? RPCChannel(host: info.nodeManagerAddress, port: Int(info.nodeManagerPort)) else { continue }
                raylets[id] = channel
            }
            missing.removeAll()
        }
        for node in nodes { result[node] = raylets[node] }
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
            view.update(id, NodeResources(total: total, available: available, labels: info.labels))
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
        batch.lines = ["Warning: placement group\(name) \(data.placementGroupID.map { String(format: "%02x", $0) }.joined()) cannot be created: \(message). It stays PENDING until nodes that can hold it join the cluster; `ray status` lists it among the pending demands."]
        var request = Ray_Rpc_PublishLogsRequest()
        request.batches = [batch]
        _ = try? await channel.unary(CoreWorkerMethods.publishLogs, request, options: CallOptions(timeout: .seconds(5)))
    }

    static func nowNanoseconds() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1e9) }
}

extension PlacementStrategy {
    init(_ proto: Ray_Rpc_PlacementStrategy) {
        switch proto {
        case .pack, .UNRECOGNIZED: self = .pack
        case .spread: self = .spread
        case .strictPack: self = .strictPack
        case .strictSpread: self = .strictSpread
        }
    }
}
