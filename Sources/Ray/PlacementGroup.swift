#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayCoreWorker
import RayProtos
import RayRPC
import RayScheduling
import RayServices

/// A gang reservation of resources across the cluster (Ray's placement group): bundles of resources
/// reserved all at once, or not at all, on nodes chosen by ``Strategy``. Tasks and actors scheduled
/// into it (``SchedulingStrategy/placementGroup(_:bundleIndex:captureChildTasks:)``) use its
/// bundles' resources.
///
/// ```swift
/// let pg = try await ray.placementGroup([["CPU": 1], ["CPU": 1]], strategy: .strictSpread)
/// try await pg.ready().get(timeout: .seconds(30))
/// let r = step.options(scheduling: .placementGroup(pg, bundleIndex: 1)).remote(x)
/// try await ray.removePlacementGroup(pg)
/// ```
public struct PlacementGroup: Sendable, Hashable, Codable, CustomStringConvertible {
    /// How the bundles are spread over nodes (Ray's `strategy`).
    public enum Strategy: String, Sendable, Hashable, Codable, CaseIterable {
        /// On as few nodes as possible (best effort).
        case pack = "PACK"
        /// On distinct nodes where possible (best effort).
        case spread = "SPREAD"
        /// All on one node, or not at all.
        case strictPack = "STRICT_PACK"
        /// Each on its own node, or not at all.
        case strictSpread = "STRICT_SPREAD"

        var proto: Ray_Rpc_PlacementStrategy {
            switch self {
            case .pack: .pack
            case .spread: .spread
            case .strictPack: .strictPack
            case .strictSpread: .strictSpread
            }
        }

        init(_ proto: Ray_Rpc_PlacementStrategy) {
            switch proto {
            case .spread: self = .spread
            case .strictPack: self = .strictPack
            case .strictSpread: self = .strictSpread
            default: self = .pack
            }
        }
    }

    public let id: PlacementGroupID
    /// The resources of each bundle, in order (bundle indices count from 0).
    public let bundles: [[String: Double]]
    public let strategy: Strategy

    public var description: String { "PlacementGroup(\(id.hex), \(bundles.count) bundles, \(strategy.rawValue))" }

    /// An object that holds this group once every bundle is reserved (Ray's `pg.ready()`); its
    /// `get` throws `TaskPlacementGroupRemoved` if the group is removed first.
    public func ready() throws -> ObjectRef<PlacementGroup> {
        guard let worker = Ray.currentWorker else {
            throw RayError(.system, "Ray is not running in this process: start it with Ray.start() or a RayApplication")
        }
        let bytes: [UInt8]
        do { bytes = try BinaryEncoder().encode(self) } catch {
            throw RayError(.serialization, "a placement group did not encode", cause: "\(error)")
        }
        return ObjectRef(adopting: worker.placementGroupReady(id, value: bytes), worker: worker)
    }

    /// Waits up to `timeout` for the group to be created (Ray's `pg.wait(timeout_seconds)`): true if
    /// it is, false if the time ran out. Throws if it was removed.
    public func wait(timeout: Duration) async throws -> Bool {
        guard let worker = Ray.currentWorker else {
            throw RayError(.system, "Ray is not running in this process: start it with Ray.start() or a RayApplication")
        }
        do {
            return try await worker.waitPlacementGroup(id, timeout: timeout)
        } catch where error.code == .failedPrecondition || error.code == .notFound || error.code == .invalidArgument
            || error.code == .alreadyExists {
            throw RayError(.taskPlacementGroupRemoved, error.message)
        } catch {
            throw RayError(.connection, "the GCS did not say whether placement group \(id.hex) is ready", cause: "\(error)")
        }
    }
}

/// A placement group as the GCS's table has it (Ray's `placement_group_table()`).
public struct PlacementGroupInfo: Sendable, Hashable {
    public enum State: String, Sendable, Hashable {
        case pending = "PENDING", created = "CREATED", removed = "REMOVED", rescheduling = "RESCHEDULING"
    }
    /// Why a group waits (Ray's `stats.scheduling_state`).
    public enum SchedulingState: String, Sendable, Hashable {
        case queued = "QUEUED", removed = "REMOVED", schedulingStarted = "SCHEDULING_STARTED"
        /// The cluster could hold it, but not with what is free now.
        case noResources = "NO_RESOURCES"
        /// No node of the cluster could ever hold it as asked.
        case infeasible = "INFEASIBLE"
        case failedToCommitResources = "FAILED_TO_COMMIT_RESOURCES"
        case finished = "FINISHED"
    }

    public let group: PlacementGroup
    public let name: String
    public let namespace: String
    public let state: State
    /// The node of each bundle (nil while it is not placed).
    public let bundleNodes: [NodeID?]
    public let schedulingState: SchedulingState
    /// Why it is not placed (for `noResources` and `infeasible`).
    public let message: String
    public let isDetached: Bool

    init(_ data: Ray_Rpc_PlacementGroupTableData) {
        group = PlacementGroup(data)
        name = data.name
        namespace = data.rayNamespace
        switch data.state {
        case .created: state = .created
        case .removed: state = .removed
        case .rescheduling: state = .rescheduling
        default: state = .pending
        }
        bundleNodes = data.bundles.map { $0.nodeID.isEmpty ? nil : try? NodeID(bytes: $0.nodeID) }
        switch data.stats.schedulingState {
        case .removed: schedulingState = .removed
        case .schedulingStarted: schedulingState = .schedulingStarted
        case .noResources: schedulingState = .noResources
        case .infeasible: schedulingState = .infeasible
        case .failedToCommitResources: schedulingState = .failedToCommitResources
        case .finished: schedulingState = .finished
        default: schedulingState = .queued
        }
        message = data.stats.message
        isDetached = data.isDetached
    }
}

extension PlacementGroup {
    init(_ data: Ray_Rpc_PlacementGroupTableData) {
        id = (try? PlacementGroupID(bytes: data.placementGroupID)) ?? .nil
        bundles = data.bundles.map(\.unitResources)
        strategy = Strategy(data.strategy)
    }
}

extension Ray {
    /// Reserves `bundles` on the cluster with `strategy` and returns at once; the group is PENDING
    /// until every bundle is reserved (``PlacementGroup/ready()``). A `name` makes it findable
    /// (``getPlacementGroup(named:namespace:)``) and must be unique in its namespace; a `detached`
    /// group outlives this job. `bundleLabelSelector[i]` names the labels bundle `i`'s node must
    /// have, in Ray's forms (`"gpu-a"`, `"!spot"`, `"in(a,b)"`, `"!in(a,b)"`). Throws for an empty
    /// bundle list, a bundle with no resource above zero, negative amounts, a selector that is not
    /// valid, more selectors than bundles, or a name in use.
    public func placementGroup(_ bundles: [[String: Double]], strategy: PlacementGroup.Strategy = .pack, name: String? = nil,
                               namespace: String? = nil, lifetime: ActorOptions.Lifetime = .nonDetached,
                               bundleLabelSelector: [[String: String]] = []) async throws -> PlacementGroup {
        if let problem = BundleResources.problem(with: bundles) { throw RayError(.system, problem) }
        guard bundleLabelSelector.count <= bundles.count else {
            throw RayError(.system, "bundle_label_selector has \(bundleLabelSelector.count) entries for \(bundles.count) bundles")
        }
        for selector in bundleLabelSelector {
            do { _ = try LabelSelector(selector) } catch { throw RayError(.system, "bundle_label_selector: \(error)") }
        }
        let id = PlacementGroupID.random(job: jobID)
        var spec = Ray_Rpc_PlacementGroupTableData()
        spec.placementGroupID = Data(id.bytes)
        spec.name = name ?? ""
        spec.rayNamespace = namespace ?? self.namespace
        spec.strategy = strategy.proto
        spec.creatorJobID = Data(jobID.bytes)
        spec.isDetached = lifetime == .detached
        spec.bundles = bundles.enumerated().map { index, resources in
            var bundle = Ray_Rpc_Bundle()
            bundle.unitResources = resources
            if index < bundleLabelSelector.count { bundle.labelSelector = bundleLabelSelector[index] }
            return bundle
        }
        // A named group waits for the GCS (the name may be taken); others are registered in the
        // background, ahead of any wait, ready or removal of them.
        try await gcsCall("create a placement group") { _ in try await worker.createPlacementGroup(spec, confirm: name != nil) }
        return PlacementGroup(id: id, bundles: bundles, strategy: strategy)
    }

    /// Removes the group: the tasks and actors running in it are killed, its resources are free again
    /// on every node, and work still waiting for it fails with `TaskPlacementGroupRemoved`.
    public func removePlacementGroup(_ group: PlacementGroup) async throws {
        try await gcsCall("remove placement group \(group.id.hex)") { _ in try await worker.removePlacementGroup(group.id) }
    }

    /// The live group named `name` in `namespace` (default: this job's), created by any job.
    public func getPlacementGroup(named name: String, namespace: String? = nil) async throws -> PlacementGroup {
        var request = Ray_Rpc_GetNamedPlacementGroupRequest()
        request.name = name
        request.rayNamespace = namespace ?? self.namespace
        let reply = try await gcsCall("find placement group '\(name)'") {
            try await $0.unary(GCSMethods.getNamedPlacementGroup, request, options: CallOptions(timeout: .seconds(10)))
        }
        return PlacementGroup(reply.placementGroupTableData)
    }

    /// The group's state, where its bundles are, and why it waits.
    public func placementGroupInfo(_ group: PlacementGroup) async throws -> PlacementGroupInfo {
        var request = Ray_Rpc_GetPlacementGroupRequest()
        request.placementGroupID = Data(group.id.bytes)
        let reply = try await gcsCall("look up placement group \(group.id.hex)") {
            try await worker.placementGroupRegistered(group.id)
            return try await $0.unary(GCSMethods.getPlacementGroup, request, options: CallOptions(timeout: .seconds(10)))
        }
        return PlacementGroupInfo(reply.placementGroupTableData)
    }

    /// Every placement group of the cluster, removed ones too, oldest first (Ray's `placement_group_table()`).
    public func placementGroups() async throws -> [PlacementGroupInfo] {
        let reply = try await gcsCall("list placement groups") {
            try await $0.unary(GCSMethods.getAllPlacementGroup, Ray_Rpc_GetAllPlacementGroupRequest(), options: CallOptions(timeout: .seconds(10)))
        }
        return reply.placementGroupTableData.map(PlacementGroupInfo.init)
    }

    /// A GCS call: NOT_FOUND, INVALID_ARGUMENT and ALREADY_EXISTS are the caller's mistakes (their
    /// message as is); anything else means the GCS could not be asked.
    @discardableResult
    func gcsCall<Reply>(_ what: String, _ call: (RPCChannel) async throws -> Reply) async throws -> Reply {
        do {
            return try await call(worker.gcsChannel())
        } catch let error as RPCError where [.notFound, .invalidArgument, .alreadyExists, .failedPrecondition].contains(error.code) {
            throw RayError(.system, error.message)
        } catch {
            throw RayError(.connection, "the GCS at \(gcsAddress) could not \(what)", cause: "\(error)")
        }
    }
}
