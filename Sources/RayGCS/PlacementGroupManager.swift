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

    let state: GCSState
    var groups: [PlacementGroupID: GroupData] = [:]
    var order: [PlacementGroupID] = []
    /// "namespace/name" of groups not REMOVED.
    var named: [String: PlacementGroupID] = [:]
    /// Groups waiting to be placed, oldest first (rescheduled ones go first).
    var queue: [PlacementGroupID] = []
    /// Groups being reserved now (out of the queue meanwhile).
    var reserving: Set<PlacementGroupID> = []
    var waiters: [PlacementGroupID: [Int: CheckedContinuation<Void, any Error>]] = [:]
    var nextWaiter = 0
    let raylets: RayletChannels
    var scheduling = false
    var again = false
    /// Drivers already warned that their group cannot be placed anywhere.
    var warned: Set<PlacementGroupID> = []
    /// Removed groups kept in the table (Ray keeps a bounded history of dead groups too).
    private let removedLimit = 10_000
    /// Bundles to give back, by node and reason, sent in batches (removal does not wait for them).
    var cancels: [CancelKey: [Ray_Rpc_Bundle]] = [:]
    var cancelling = false
    private var removedCount = 0

    init(state: GCSState, raylets: RayletChannels) {
        self.state = state
        self.raylets = raylets
    }

    static func nowNanoseconds() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1e9) }

    private static func nameKey(_ namespace: String, _ name: String) -> String { "\(namespace)/\(name)" }

    // MARK: creation and removal

    /// Registers groups (PENDING), all checked before any is registered, and starts placing them.
    func create(_ specs: [GroupData]) async throws(RPCError) {
        var ids: [PlacementGroupID] = []
        var names: Set<String> = []
        for spec in specs {
            let id = try PlacementGroupID(spec.placementGroupID, field: "placement_group_id")
            _ = try JobID(spec.creatorJobID, field: "creator_job_id")
            try Self.validate(spec.bundles, strategy: spec.strategy)
            guard groups[id] == nil, !ids.contains(id) else { throw RPCError(code: .alreadyExists, message: "placement group \(id.hex) already exists") }
            if !spec.name.isEmpty {
                let key = Self.nameKey(spec.rayNamespace, spec.name)
                guard named[key] == nil, names.insert(key).inserted else {
                    throw RPCError(code: .alreadyExists, message: "Failed to create placement group '\(spec.name)' because name already exists in namespace '\(spec.rayNamespace)'.")
                }
            }
            ids.append(id)
        }
        var registered: [GroupData] = []
        for (id, spec) in zip(ids, specs) {
            if !spec.name.isEmpty { named[Self.nameKey(spec.rayNamespace, spec.name)] = id }
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
            registered.append(data)
        }
        await state.publishPlacementGroups(registered)
        kick()
    }

    /// Ray's checks (``BundleResources/problem(with:)``) and a known strategy.
    static func validate(_ bundles: [Ray_Rpc_Bundle], strategy: Ray_Rpc_PlacementStrategy) throws(RPCError) {
        if case .UNRECOGNIZED(let value) = strategy {
            throw RPCError(code: .invalidArgument, message: "unknown placement strategy \(value); use PACK, SPREAD, STRICT_PACK or STRICT_SPREAD")
        }
        if let problem = BundleResources.problem(with: bundles.map(\.unitResources)) {
            throw RPCError(code: .invalidArgument, message: problem)
        }
        for (index, bundle) in bundles.enumerated() where !bundle.labelSelector.isEmpty {
            do { _ = try LabelSelector(bundle.labelSelector) } catch {
                throw RPCError(code: .invalidArgument, message: "bundle_label_selector of bundle \(index): \(error)")
            }
        }
    }

    /// Removes a group (Ray: asynchronously): it is REMOVED at once, `ready()` fails if it was not
    /// created yet, and waiting leases for it fail (the raylets hear it on the placement-group
    /// channel); its bundles are then given back on every node, the workers using them killed.
    /// Removing a removed group is a no-op.
    func remove(_ raws: [Data], reason: String = "") async throws(RPCError) {
        var refusal: RPCError?
        var removed: [GroupData] = []
        for raw in raws {
            guard let id = try? PlacementGroupID(raw, field: "placement_group_id") else {
                refusal = refusal ?? RPCError(code: .invalidArgument, message: "placement_group_id must be \(PlacementGroupIDKind.size) bytes, got \(raw.count)")
                continue
            }
            guard var data = groups[id] else {
                refusal = refusal ?? RPCError(code: .notFound, message: "no placement group \(id.hex)")
                continue
            }
            guard data.state != .removed else { continue }
            let placed = data.bundles.filter { !$0.nodeID.isEmpty }
            let waiting = data.state == .pending || data.state == .rescheduling
            data.state = .removed
            data.stats.schedulingState = .removed
            for index in data.bundles.indices { data.bundles[index].nodeID = Data() }
            groups[id] = data
            if waiting { queue.removeAll { $0 == id } }
            if !data.name.isEmpty { named[Self.nameKey(data.rayNamespace, data.name)] = nil }
            removed.append(data)
            for waiter in waiters.removeValue(forKey: id)?.values ?? [:].values {
                waiter.resume(throwing: RPCError(code: .failedPrecondition, message: "placement group \(id.hex) was removed before it was created"))
            }
            enqueueCancel(placed, reason: reason)
            forgetOldRemoved()
        }
        await state.publishPlacementGroups(removed)
        if let refusal { throw refusal }
    }

    /// Forgets the oldest removed groups once there are a tenth more than `removedLimit` (so the
    /// cost is spread over many removals).
    private func forgetOldRemoved() {
        removedCount += 1
        guard removedCount > removedLimit + removedLimit / 10 else { return }
        var drop = removedCount - removedLimit
        order.removeAll { id in
            guard drop > 0, groups[id]?.state == .removed else { return false }
            groups[id] = nil
            drop -= 1
            return true
        }
        removedCount = removedLimit
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
        if let id = try? NodeID(bytes: raw) { raylets.forget(id) }
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
            try? await remove([Data(id.bytes)], reason: "its placement group \(id.hex) was removed: its creator, job \(job), finished")
        }
    }
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
