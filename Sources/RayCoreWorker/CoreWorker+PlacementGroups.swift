#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayConcurrency
import RayProtos
import RayRPC
import RayScheduling
import RayServices

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
            guard let captured = Self.capturingPlacementGroup ?? actorPlacementGroup.withLock({ $0 }) else { return (resources, strategy) }
            // Children go into any bundle of the group and capture in their turn (Ray's rule).
            var inherited = captured
            inherited.placementGroupBundleIndex = -1
            strategy.placementGroupSchedulingStrategy = inherited
        }
        guard case .placementGroupSchedulingStrategy(let group) = strategy.strategy,
              let id = try? PlacementGroupID(bytes: group.placementGroupID) else { return (resources, strategy) }
        return (BundleResources.request(resources, index: Int(group.placementGroupBundleIndex), in: id), strategy)
    }

    /// An object owned by this process that holds `value` once the group is created, or a
    /// `TaskPlacementGroupRemoved` error if it is removed first (Ray's `pg.ready()`).
    public func placementGroupReady(_ group: PlacementGroupID, value: [UInt8]) -> ObjectID {
        let id = ObjectID(task: submitter.putTaskID, index: submitter.nextPutIndex())
        store.addOwned(id)
        Task(executorPreference: ThreadExecutor.coreWorker) { [self] in
            var request = Ray_Rpc_WaitPlacementGroupUntilReadyRequest()
            request.placementGroupID = Data(group.bytes)
            while true {
                do {
                    _ = try await gcsChannel().unary(GCSMethods.waitPlacementGroupUntilReady, request, options: CallOptions(timeout: .seconds(3600)))
                    store.set(id, .inline(value))
                    return
                } catch let error as RPCError where error.code == .deadlineExceeded || error.code == .unavailable {
                    try? await ThreadExecutor.coreWorker.sleep(for: .milliseconds(200))
                } catch {
                    let message = (error as? RPCError)?.message ?? "\(error)"
                    store.set(id, .error(TaskFailure(kind: .taskPlacementGroupRemoved, type: "",
                                                     message: message, function: "PlacementGroup.ready")))
                    return
                }
            }
        }
        return id
    }
}
