#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import RayCommon
import RayConcurrency
import RayGCSClient
import RayProtos
import RayRPC
import RayScheduling
import RayServices
import Synchronization

/// Work in placement groups: what a task or actor in a bundle asks the raylets for, the group a
/// running task or actor hands on to what it starts (capture_child_tasks), and `ready()` as an object.
extension CoreWorker {
    /// The placement group of the task running here, when it was started with capture_child_tasks.
    @TaskLocal public static var capturingPlacementGroup: Ray_Rpc_PlacementGroupSchedulingStrategy?

    /// The resources and strategy a task or actor is submitted with: in a placement group (its own
    /// strategy, or the one captured from the task or actor starting it), its resources become the
    /// bundle's named ones (``BundleResources``).
    public func placement(_ resources: [String: Double], _ strategy: Ray_Rpc_SchedulingStrategy)
        -> ([String: Double], Ray_Rpc_SchedulingStrategy)
    {
        var strategy = strategy
        if strategy.strategy == nil {
            // The common case (no strategy, nothing captured) costs a task-local read and a flag.
            guard let captured = Self.capturingPlacementGroup
                ?? (hasActorPlacementGroup.load(ordering: .acquiring) ? actorPlacementGroup.withLock({ $0 }) : nil)
            else { return (resources, strategy) }
            // Children go into any bundle of the group and capture in their turn (Ray's rule).
            var inherited = captured
            inherited.placementGroupBundleIndex = -1
            strategy.placementGroupSchedulingStrategy = inherited
        }
        guard case .placementGroupSchedulingStrategy(let group) = strategy.strategy,
              let id = try? PlacementGroupID(bytes: group.placementGroupID) else { return (resources, strategy) }
        return (BundleResources.request(resources, index: Int(group.placementGroupBundleIndex), in: id), strategy)
    }

    /// This process's actor was created in `group` with capture_child_tasks.
    func setActorPlacementGroup(_ group: Ray_Rpc_PlacementGroupSchedulingStrategy) {
        actorPlacementGroup.withLock { $0 = group }
        hasActorPlacementGroup.store(true, ordering: .releasing)
    }

    /// Registers a group with the GCS. With `confirm` (a named group: the name may be taken) this
    /// waits for the GCS's answer and throws its refusal; without, the call goes out in the
    /// background and this returns at once: `wait`, `ready` and removal of the group come after it,
    /// and a refusal fails them.
    public func createPlacementGroup(_ spec: Ray_Rpc_PlacementGroupTableData, confirm: Bool) async throws(RPCError) {
        let id = try PlacementGroupID(spec.placementGroupID, field: "placement_group_id")
        await placementGroups.follow(gcsAddress: gcsAddress)
        let call = placementGroupCalls.enqueue(.create(spec), on: try gcsChannel())
        placementGroups.creating(id, call)
        if confirm, let refusal = await placementGroups.settled(id) { throw refusal }
    }

    /// Returns once the group's registration (if this process made it) reached the GCS; throws the
    /// GCS's refusal of it.
    public func placementGroupRegistered(_ id: PlacementGroupID) async throws(RPCError) {
        if let refusal = await placementGroups.settled(id), placementGroups.known(id) != .removedHere { throw refusal }
    }

    /// Waits up to `timeout` (nil: no limit) for the group to be CREATED: true if it is, false if the
    /// time ran out; throws if it was removed (or never registered).
    public func waitPlacementGroup(_ id: PlacementGroupID, timeout: Duration?) async throws(RPCError) -> Bool {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        if let refusal = await placementGroups.settled(id), placementGroups.known(id) != .removedHere { throw refusal }
        if placementGroups.known(id) == nil {
            // Made elsewhere: follow the channel first, then ask where it is now.
            await placementGroups.follow(gcsAddress: gcsAddress)
            var request = Ray_Rpc_GetPlacementGroupRequest()
            request.placementGroupID = Data(id.bytes)
            let data = try await gcsChannel().unary(GCSMethods.getPlacementGroup, request, options: CallOptions(timeout: .seconds(10)))
            placementGroups.learn(data.placementGroupTableData)
        }
        return try await placementGroups.wait(id, until: deadline)
    }

    /// Removes the group (Ray's removal is asynchronous too). One this process made is removed in
    /// the background, after its registration (``PlacementGroupCalls``): it is REMOVED here at once
    /// (waits for it fail), and the GCS frees its bundles on the nodes; a failure to reach the GCS
    /// is logged. A group made elsewhere waits for the GCS's answer and throws its refusal.
    public func removePlacementGroup(_ id: PlacementGroupID) async throws(RPCError) {
        var request = Ray_Rpc_RemovePlacementGroupRequest()
        request.placementGroupID = Data(id.bytes)
        let channel = try gcsChannel()
        guard let previous = placementGroups.madeHere(id) else {
            _ = try await channel.unary(GCSMethods.removePlacementGroup, request, options: CallOptions(timeout: .seconds(30)))
            placementGroups.removed(id, after: nil)
            return
        }
        let call = placementGroupCalls.enqueue(.remove(Data(id.bytes), after: previous), on: channel)
        placementGroups.removed(id, after: call)
    }

    /// An object owned by this process that holds `value` once the group is created, or a
    /// `TaskPlacementGroupRemoved` error if it is removed first (Ray's `pg.ready()`).
    public func placementGroupReady(_ group: PlacementGroupID, value: [UInt8]) -> ObjectID {
        let id = ObjectID(task: submitter.putTaskID, index: submitter.nextPutIndex())
        store.addOwned(id)
        Task(executorPreference: ThreadExecutor.coreWorker) { [self] in
            do throws(RPCError) {
                _ = try await waitPlacementGroup(group, timeout: nil)
                store.set(id, .inline(value))
            } catch {
                store.set(id, .error(TaskFailure(kind: .taskPlacementGroupRemoved, type: "", message: error.message, function: "PlacementGroup.ready")))
            }
        }
        return id
    }
}

/// The placement groups a process made or waits for, kept current from the GCS's placement-group
/// channel (followed from the first group this process makes or waits for), so waiting for a group
/// this process made costs no call.
final class PlacementGroupWatcher: Sendable {
    enum Known: Sendable, Equatable {
        case waiting
        case created
        case removed(String)
        /// This process removed it.
        case removedHere
    }

    private struct Waiter {
        var continuation: CheckedContinuation<Bool, any Error>
        var timer: ScheduledTimer?
    }

    private struct State {
        var follower: Task<Void, Never>?
        /// Finished once the channel is followed (or following gave up, or Ray shut down).
        var subscribed: CallOutcome?
        var known: [PlacementGroupID: Known] = [:]
        /// The newest call about a group this process made (its registration, then its removal),
        /// each sent after the one before.
        var inFlight: [PlacementGroupID: CallOutcome] = [:]
        var waiters: [PlacementGroupID: [UInt64: Waiter]] = [:]
        var nextWaiter: UInt64 = 0
        var stopped = false
    }
    private let state = Mutex(State())

    /// Starts following the channel (once) and returns when it is followed.
    func follow(gcsAddress: String) async {
        let (gate, start) = state.withLock { s -> (CallOutcome?, Bool) in
            if s.stopped { return (nil, false) }
            if let gate = s.subscribed { return (gate, false) }
            let gate = CallOutcome()
            s.subscribed = gate
            return (gate, true)
        }
        guard let gate else { return }
        if start {
            let follower = Task(executorPreference: ThreadExecutor.coreWorker) { [weak self] in
                defer { gate.finish(nil) }
                guard let gcs = try? GCSClient(address: gcsAddress) else { return }
                while !Task.isCancelled {
                    if let changes = try? await gcs.subscribe([.gcsPlacementGroupChannel]) {
                        gate.finish(nil)
                        do {
                            for try await message in changes {
                                guard case .placementGroupMessage(let data) = message.innerMessage else { continue }
                                self?.learn(data)
                            }
                        } catch {}
                        return
                    }
                    try? await ThreadExecutor.coreWorker.sleep(for: .milliseconds(200))
                }
            }
            let stopped = state.withLock { s in
                s.follower = follower
                return s.stopped
            }
            if stopped { follower.cancel() }
        }
        _ = await gate.value
    }

    func stop() {
        let (follower, gate, waiters) = state.withLock { s in
            s.stopped = true
            defer { s.waiters = [:] }
            return (s.follower, s.subscribed, s.waiters.values.flatMap(\.values))
        }
        follower?.cancel()
        gate?.finish(nil)
        resume(waiters, with: .failure(RPCError(code: .cancelled, message: "Ray shut down")))
    }

    private func resume(_ waiters: [Waiter], with result: Result<Bool, RPCError>) {
        for waiter in waiters {
            if let timer = waiter.timer { _ = ThreadExecutor.coreWorker.cancel(timer) }
            waiter.continuation.resume(with: result.mapError { $0 as any Error })
        }
    }

    func creating(_ id: PlacementGroupID, _ call: CallOutcome) {
        state.withLock { s in
            if s.known[id] == nil { s.known[id] = .waiting }
            s.inFlight[id] = call
        }
    }

    /// nil if this process did not make the group; else the call its removal must follow (nil
    /// inside if none is in flight).
    func madeHere(_ id: PlacementGroupID) -> CallOutcome?? {
        state.withLock { s in s.known[id] == nil ? nil : .some(s.inFlight[id]) }
    }

    /// The group is removed by this process: final here at once, its waiters fail.
    func removed(_ id: PlacementGroupID, after call: CallOutcome?) {
        let waiters = state.withLock { s -> [Waiter] in
            s.known[id] = .removedHere
            s.inFlight[id] = call
            return s.waiters.removeValue(forKey: id).map { Array($0.values) } ?? []
        }
        resume(waiters, with: .failure(RPCError(code: .failedPrecondition, message: "placement group \(id.hex) was removed")))
    }

    /// Waits for the calls about the group still going out; the refusal of one, if it was refused
    /// (a refused registration makes the group removed here).
    func settled(_ id: PlacementGroupID) async -> RPCError? {
        guard let call = state.withLock({ $0.inFlight[id] }) else { return nil }
        let refusal = await call.value
        state.withLock { s in
            if s.inFlight[id] === call { s.inFlight[id] = nil }
            if let refusal, s.known[id] != .removedHere { s.known[id] = .removed(refusal.message) }
        }
        return refusal
    }

    /// Waits (up to `limit`) for every call still going out, so none is lost at shutdown.
    func drain(limit: Duration) async {
        let calls = state.withLock { Array($0.inFlight.values) }
        let deadline = ContinuousClock.now + limit
        for call in calls {
            let remaining = deadline - .now
            guard remaining > .zero else { return }
            _ = await withTaskGroup(of: Bool.self) { group in
                group.addTask { _ = await call.value; return true }
                group.addTask { try? await Task.sleep(for: remaining); return false }
                defer { group.cancelAll() }
                return await group.next() ?? false
            }
        }
    }

    func known(_ id: PlacementGroupID) -> Known? { state.withLock { $0.known[id] } }

    /// A state the GCS published (or answered): wakes the waiters of a group created or removed.
    func learn(_ data: Ray_Rpc_PlacementGroupTableData) {
        guard let id = try? PlacementGroupID(bytes: data.placementGroupID) else { return }
        let known: Known
        switch data.state {
        case .created: known = .created
        case .removed: known = .removed("placement group \(id.hex) was removed before it was created")
        default: known = .waiting
        }
        let waiters = state.withLock { s -> [Waiter] in
            if case .removed = s.known[id] { return [] }  // removal is final
            if s.known[id] == .removedHere { return [] }
            s.known[id] = known
            guard known != .waiting else { return [] }
            return s.waiters.removeValue(forKey: id).map { Array($0.values) } ?? []
        }
        if case .removed(let message) = known {
            resume(waiters, with: .failure(RPCError(code: .failedPrecondition, message: message)))
        } else {
            resume(waiters, with: .success(true))
        }
    }

    /// True once the group is CREATED, false at `deadline`; throws if it is removed.
    func wait(_ id: PlacementGroupID, until deadline: ContinuousClock.Instant?) async throws(RPCError) -> Bool {
        do {
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Bool, any Error>) in
                let (answer, key) = state.withLock { s -> (Result<Bool, RPCError>?, UInt64) in
                    switch s.known[id] {
                    case .created: return (.success(true), 0)
                    case .removed(let message): return (.failure(RPCError(code: .failedPrecondition, message: message)), 0)
                    case .removedHere: return (.failure(RPCError(code: .failedPrecondition, message: "placement group \(id.hex) was removed")), 0)
                    default:
                        if s.stopped { return (.failure(RPCError(code: .cancelled, message: "Ray shut down")), 0) }
                        if let deadline, deadline <= .now { return (.success(false), 0) }
                        s.nextWaiter += 1
                        s.waiters[id, default: [:]][s.nextWaiter] = Waiter(continuation: continuation)
                        return (nil, s.nextWaiter)
                    }
                }
                if let answer {
                    continuation.resume(with: answer.mapError { $0 as any Error })
                    return
                }
                guard let deadline else { return }
                let timer = ThreadExecutor.coreWorker.schedule(at: deadline) { [weak self] in
                    let waiter = self?.state.withLock { $0.waiters[id]?.removeValue(forKey: key) }
                    waiter?.continuation.resume(returning: false)
                }
                state.withLock { $0.waiters[id]?[key]?.timer = timer }
            }
        } catch let error as RPCError {
            throw error
        } catch {
            throw RPCError(code: .internalError, message: "\(error)")
        }
    }
}
