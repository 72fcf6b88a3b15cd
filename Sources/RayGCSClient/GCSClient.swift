#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayConcurrency
import RayProtos
import RayRPC
import RayServices

/// A typed client of the GCS for drivers, workers, raylets and tools. Every call has a deadline
/// (`RAY_rpc_timeout_ms` unless given).
public final class GCSClient: Sendable {
    public let address: String
    let channel: RPCChannel
    let timeout: Duration

    public init(address: String, timeout: Duration? = nil) throws(RPCError) {
        self.address = address
        self.channel = try RPCChannel(target: address)
        self.timeout = timeout ?? .milliseconds(RayConfig()[RayConfig.rpcTimeoutMilliseconds])
    }

    func call<Request, Response>(_ method: RPCMethod<Request, Response>, _ request: Request,
                                 waitForReady: Bool = false) async throws(RPCError) -> Response {
        try await channel.unary(method, request, options: CallOptions(timeout: timeout, waitForReady: waitForReady))
    }

    // MARK: nodes and jobs

    public func nodes() async throws(RPCError) -> [Ray_Rpc_GcsNodeInfo] {
        try await call(GCSMethods.getAllNodeInfo, Ray_Rpc_GetAllNodeInfoRequest()).nodeInfoList
    }

    public func register(node: Ray_Rpc_GcsNodeInfo) async throws(RPCError) {
        var request = Ray_Rpc_RegisterNodeRequest()
        request.nodeInfo = node
        _ = try await call(GCSMethods.registerNode, request, waitForReady: true)
    }

    public func unregister(node: NodeID, reason: String) async throws(RPCError) {
        var request = Ray_Rpc_UnregisterNodeRequest()
        request.nodeID = Data(node.bytes)
        request.deathReason = reason
        _ = try await call(GCSMethods.unregisterNode, request)
    }

    /// A new job ID, numbered by the GCS.
    public func nextJobID() async throws(RPCError) -> JobID {
        JobID(number: UInt32(bitPattern: try await call(GCSMethods.getNextJobID, Ray_Rpc_GetNextJobIDRequest()).jobID))
    }

    /// Records a running job (its driver calls this once it has a job ID).
    public func addJob(_ job: Ray_Rpc_JobTableData) async throws(RPCError) {
        var request = Ray_Rpc_AddJobRequest()
        request.data = job
        _ = try await call(GCSMethods.addJob, request)
    }

    public func markJobFinished(_ job: JobID) async throws(RPCError) {
        var request = Ray_Rpc_MarkJobFinishedRequest()
        request.jobID = Data(job.bytes)
        _ = try await call(GCSMethods.markJobFinished, request)
    }

    public func jobs() async throws(RPCError) -> [Ray_Rpc_JobTableData] {
        try await call(GCSMethods.getAllJobInfo, Ray_Rpc_GetAllJobInfoRequest()).jobInfoList
    }

    /// The actor table (every job's, dead actors included).
    public func actors() async throws(RPCError) -> [Ray_Rpc_ActorTableData] {
        try await call(GCSMethods.getAllActorInfo, Ray_Rpc_GetAllActorInfoRequest()).actorTableData
    }

    /// Reports task events (owners and executors do, in batches).
    public func addTaskEvents(_ events: [Ray_Rpc_TaskEvent], dropped: Int64) async throws(RPCError) {
        var request = Ray_Rpc_AddTaskEventDataRequest()
        request.events = events
        request.dropped = dropped
        _ = try await call(GCSMethods.addTaskEventData, request)
    }

    /// The task attempts the GCS knows of, merged from their events (the newest `limit`; 0: all).
    public func taskEvents(limit: Int = 0, job: Data = Data()) async throws(RPCError) -> Ray_Rpc_GetTaskEventsReply {
        var request = Ray_Rpc_GetTaskEventsRequest()
        request.limit = Int64(limit)
        request.jobID = job
        return try await call(GCSMethods.getTaskEvents, request)
    }

    /// Task attempts by state, function name and job (what the ray_tasks metric reports).
    public func taskCounts() async throws(RPCError) -> [Ray_Rpc_TaskStateCount] {
        var request = Ray_Rpc_GetTaskEventsRequest()
        request.countsOnly = true
        return try await call(GCSMethods.getTaskEvents, request).counts
    }

    // MARK: workers and the resource view

    public func addWorker(_ worker: Ray_Rpc_WorkerTableData) async throws(RPCError) {
        var request = Ray_Rpc_AddWorkerInfoRequest()
        request.workerData = worker
        _ = try await call(GCSMethods.addWorkerInfo, request)
    }

    public func reportWorkerFailure(_ worker: Ray_Rpc_WorkerTableData) async throws(RPCError) {
        var request = Ray_Rpc_ReportWorkerFailureRequest()
        request.workerFailure = worker
        _ = try await call(GCSMethods.reportWorkerFailure, request)
    }

    /// The worker table, newest first (`limit` 0: all).
    public func workers(limit: Int = 0) async throws(RPCError) -> [Ray_Rpc_WorkerTableData] {
        var request = Ray_Rpc_GetAllWorkerInfoRequest()
        request.limit = Int64(limit)
        return try await call(GCSMethods.getAllWorkerInfo, request).workerTableData
    }

    public func reportResources(_ resources: Ray_Rpc_ResourcesData) async throws(RPCError) {
        var request = Ray_Rpc_ReportResourceUsageRequest()
        request.resources = resources
        _ = try await call(GCSMethods.reportResourceUsage, request)
    }

    /// A placement group as the GCS has it.
    public func placementGroup(_ id: PlacementGroupID) async throws(RPCError) -> Ray_Rpc_PlacementGroupTableData {
        var request = Ray_Rpc_GetPlacementGroupRequest()
        request.placementGroupID = Data(id.bytes)
        return try await call(GCSMethods.getPlacementGroup, request).placementGroupTableData
    }

    /// Registers a placement group (PENDING until its bundles are reserved).
    public func createPlacementGroup(_ spec: Ray_Rpc_PlacementGroupTableData) async throws(RPCError) {
        var request = Ray_Rpc_CreatePlacementGroupRequest()
        request.placementGroupSpec = spec
        _ = try await call(GCSMethods.createPlacementGroup, request)
    }

    /// Removes a placement group, giving its bundles back (a no-op for a removed one).
    public func removePlacementGroup(_ id: PlacementGroupID) async throws(RPCError) {
        var request = Ray_Rpc_RemovePlacementGroupRequest()
        request.placementGroupID = Data(id.bytes)
        _ = try await call(GCSMethods.removePlacementGroup, request)
    }

    /// Every placement group the GCS has (removed ones included).
    public func placementGroups() async throws(RPCError) -> [Ray_Rpc_PlacementGroupTableData] {
        try await call(GCSMethods.getAllPlacementGroup, Ray_Rpc_GetAllPlacementGroupRequest()).placementGroupTableData
    }

    /// The cluster's resource view: each live node's last report (with how long idle nodes have been).
    public func resourceUsage() async throws(RPCError) -> [Ray_Rpc_ResourcesData] {
        try await call(GCSMethods.getAllResourceUsage, Ray_Rpc_GetAllResourceUsageRequest()).batch
    }

    // MARK: internal KV

    /// The internal key-value store, in one namespace.
    public func kv(namespace: String = "") -> InternalKV { InternalKV(client: self, namespace: Data(namespace.utf8)) }

    public struct InternalKV: Sendable {
        let client: GCSClient
        let namespace: Data

        public func get(_ key: String) async throws(RPCError) -> Data? {
            var request = Ray_Rpc_InternalKVGetRequest()
            request.key = Data(key.utf8)
            request.namespace = namespace
            let reply = try await client.call(GCSMethods.kvGet, request)
            return reply.found ? reply.value : nil
        }

        /// Stores `value`; an existing key keeps its value unless `overwrite`. True if the key was new.
        @discardableResult
        public func put(_ key: String, _ value: Data, overwrite: Bool = true) async throws(RPCError) -> Bool {
            var request = Ray_Rpc_InternalKVPutRequest()
            request.key = Data(key.utf8)
            request.value = value
            request.overwrite = overwrite
            request.namespace = namespace
            return try await client.call(GCSMethods.kvPut, request).addedNum == 1
        }

        /// Deletes `key` (or every key starting with it); returns how many went.
        @discardableResult
        public func delete(_ key: String, byPrefix: Bool = false) async throws(RPCError) -> Int {
            var request = Ray_Rpc_InternalKVDelRequest()
            request.key = Data(key.utf8)
            request.namespace = namespace
            request.delByPrefix = byPrefix
            return Int(try await client.call(GCSMethods.kvDel, request).deletedNum)
        }

        public func keys(prefix: String = "") async throws(RPCError) -> [String] {
            var request = Ray_Rpc_InternalKVKeysRequest()
            request.prefix = Data(prefix.utf8)
            request.namespace = namespace
            return try await client.call(GCSMethods.kvKeys, request).results.map { String(decoding: $0, as: UTF8.self) }
        }
    }

    // MARK: pub/sub

    /// Changes published on `channels` after this call returns, in order, without gaps or repeats:
    /// long polls in a loop that retries (after a short pause) while the GCS is unreachable. The
    /// stream ends when the consuming task is cancelled or stops iterating. The loop runs on the RPC
    /// layer's thread.
    public func subscribe(_ channels: Set<Ray_Rpc_ChannelType>, pollTimeout: Duration = .seconds(30))
        async throws(RPCError) -> AsyncThrowingStream<Ray_Rpc_PubMessage, any Error>
    {
        var request = Ray_Rpc_GcsSubscriberPollRequest()
        request.channels = Array(channels)
        request.maxProcessedSequenceID = -1  // answers at once with where "now" is
        request.maxProcessedSequenceID = try await call(GCSMethods.subscriberPoll, request, waitForReady: true)
            .latestSequenceID
        let channel = self.channel
        return AsyncThrowingStream { [request] continuation in
            let poller = Task(executorPreference: ThreadExecutor.rpc) {
                var request = request
                while !Task.isCancelled {
                    do {
                        let reply = try await channel.unary(
                            GCSMethods.subscriberPoll, request,
                            options: CallOptions(timeout: pollTimeout, waitForReady: true))
                        for message in reply.pubMessages where message.sequenceID > request.maxProcessedSequenceID {
                            request.maxProcessedSequenceID = message.sequenceID
                            if case .terminated = continuation.yield(message) { return }
                        }
                    } catch {
                        if Task.isCancelled { break }
                        try? await ThreadExecutor.rpc.sleep(for: .milliseconds(200))
                    }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in poller.cancel() }
        }
    }
}
