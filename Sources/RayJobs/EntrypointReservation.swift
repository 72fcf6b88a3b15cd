import Foundation
import RayCommon
import RayGCSClient
import RayProtos
import RayRPC
import RayScheduling

/// A job's entrypoint resources (`entrypoint_num_cpus`, `…_gpus`, `…_memory`, `…_resources`), held
/// for as long as its entrypoint runs. Ray gives them to the job's supervisor actor; ours is a
/// process on the head, so they are held by a one-bundle placement group whose bundle must sit on
/// the head (label `ray.io/node-id`): the job stays PENDING until the head has them free, and is
/// removed when the job ends. (Ray would run such a job on any node with the resources; ours always
/// runs on the head.)
public struct EntrypointReservation: Sendable {
    public let group: PlacementGroupID
    public let resources: [String: Double]

    /// What the job asks to hold; empty when it asks for nothing.
    public static func resources(of info: JobInfo) -> [String: Double] {
        var resources: [String: Double] = [:]
        if let cpus = info.entrypointNumCPUs, cpus > 0 { resources["CPU"] = cpus }
        if let gpus = info.entrypointNumGPUs, gpus > 0 { resources["GPU"] = gpus }
        if let memory = info.entrypointMemory, memory > 0 { resources["memory"] = Double(memory) }
        for (name, amount) in info.entrypointResources ?? [:] where amount > 0 { resources[name] = amount }
        return resources
    }

    /// Ray's RAY_JOB_START_TIMEOUT_SECONDS (15 minutes).
    public static func startTimeout(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Duration {
        if let text = environment["RAY_JOB_START_TIMEOUT_SECONDS"], let seconds = Double(text), seconds > 0 {
            return .milliseconds(Int64(seconds * 1000))
        }
        return .seconds(900)
    }

    /// How waiting for the reservation ended.
    public enum Outcome: Sendable, Equatable {
        case held
        case stopped
        /// The head could never hold it: the job fails at once (Ray: JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE).
        case unschedulable(String)
        case timedOut(String)
    }

    /// Registers the group `id` for `resources` on node `head` (hex ID). Asking again with the same
    /// ID after a lost reply makes no second group (the GCS answers that it exists).
    public static func request(_ resources: [String: Double], on head: String, id: PlacementGroupID,
                               gcs: GCSClient) async throws -> EntrypointReservation {
        var bundle = Ray_Rpc_Bundle()
        bundle.unitResources = resources
        bundle.labelSelector = [Labels.nodeID: head]
        var spec = Ray_Rpc_PlacementGroupTableData()
        spec.placementGroupID = Data(id.bytes)
        spec.creatorJobID = Data(JobID.nil.bytes)
        spec.isDetached = true  // ended by the supervisor (or, if it dies, by the dashboard), not by a job
        spec.strategy = .strictPack
        spec.bundles = [bundle]
        do {
            try await gcs.createPlacementGroup(spec)
        } catch {
            let code: RPCError.Code = error.code
            if code != .alreadyExists { throw error }
        }
        return EntrypointReservation(group: id, resources: resources)
    }

    /// Waits until the bundle is reserved, the job is stopped, the head is found unable ever to hold
    /// it, or `timeout` passes.
    public func wait(gcs: GCSClient, timeout: Duration, stopped: @Sendable () -> Bool) async -> Outcome {
        let deadline = ContinuousClock.now + timeout
        var pause = Duration.milliseconds(5)
        while true {
            if stopped() { return .stopped }
            if let data = try? await gcs.placementGroup(group) {
                if data.state == .created { return .held }
                if data.stats.schedulingState == .infeasible {
                    return .unschedulable("The job's entrypoint resources \(Self.describe(resources)) can never be held on the head node, "
                        + "where job entrypoints run: \(data.stats.message). Try checking the cluster's resources with `ray status` "
                        + "and specifying fewer resources for the job entrypoint.")
                }
            }
            if ContinuousClock.now > deadline {
                let seconds = Double(timeout / .milliseconds(1)) / 1000
                return .timedOut("Job supervisor actor failed to start within \(seconds) seconds. This timeout can be configured "
                    + "by setting the environment variable RAY_JOB_START_TIMEOUT_SECONDS. This may be because the job entrypoint's "
                    + "specified resources (entrypoint_num_cpus, entrypoint_num_gpus, entrypoint_resources, entrypoint_memory) "
                    + "aren't available on the cluster. Try checking the cluster's available resources with `ray status` and "
                    + "specifying fewer resources for the job entrypoint.")
            }
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(200))
        }
    }

    /// Gives the resources back (a removed group, or one never made, is a no-op); retries while the
    /// GCS does not answer, for at most `patience`.
    public static func release(_ group: PlacementGroupID, gcs: GCSClient, patience: Duration = .seconds(30)) async {
        let deadline = ContinuousClock.now + patience
        while true {
            do {
                try await gcs.removePlacementGroup(group)
                return
            } catch {
                let code: RPCError.Code = error.code
                if code == .notFound || code == .invalidArgument { return }
                if ContinuousClock.now > deadline { return }
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    static func describe(_ resources: [String: Double]) -> String {
        "{" + resources.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
    }

    /// The head node's hex ID and IP, as the GCS lists it.
    public static func head(gcs: GCSClient) async throws -> (id: String, ip: String)? {
        guard let node = try await gcs.nodes().first(where: { $0.isHeadNode && $0.state == .alive }) else { return nil }
        return (Hex.string(node.nodeID), node.nodeManagerAddress)
    }
}
