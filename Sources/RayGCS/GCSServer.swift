import RayCommon
import RayConcurrency
import RayProtos
import RayRPC
import RayServices

extension ThreadExecutor {
    /// The GCS's thread: its tables (``GCSState``, ``ActorManager``), handlers and health checks run
    /// here, never waiting for a thread of Swift's global pool (a driver's own code may keep every
    /// one of those busy while its embedded GCS serves the cluster). Shared by the GCS servers of a
    /// process, as Ray's GCS runs on one event loop.
    public static let gcs = ThreadExecutor(name: "ray-gcs")
}

/// The Global Control Service: one per cluster, on the head node. Serves the node, job, internal KV
/// and pub/sub services of `Protos/ray/gcs_service.proto` over gRPC.
public final class GCSServer: Sendable {
    /// The port it listens on (the one asked for, or the one port 0 picked).
    public var port: Int { server.port }
    private let server: RPCServer
    let state: GCSState
    let actors: ActorManager
    let placementGroups: PlacementGroupManager
    private let healthChecks: Task<Void, Never>

    /// Starts serving on `host:port` (port 0 picks a free port) and health-checking registered raylets
    /// (period, deadline and threshold from `RAY_health_check_*` unless given; a period given alone
    /// caps the deadline at five periods).
    public init(host: String = "127.0.0.1", port: Int = 0,
                configuration: RPCServer.Configuration = RPCServer.Configuration(),
                healthCheckPeriod: Duration? = nil, healthCheckTimeout: Duration? = nil,
                healthCheckFailureThreshold: Int? = nil) throws(RPCError) {
        let state = GCSState()
        self.state = state
        let raylets = RayletChannels()
        let actors = ActorManager(state: state, raylets: raylets)
        self.actors = actors
        let placementGroups = PlacementGroupManager(state: state, raylets: raylets)
        self.placementGroups = placementGroups
        var configuration = configuration
        configuration.executor = .gcs
        var router = Self.router(state, actors, placementGroups)
        Self.registerPlacementGroups(on: &router, placementGroups)
        let tasks = TaskEventStore(maxTasks: Int(RayConfig()[RayConfig.taskEventsMaxTasksInGCS]))
        router.register(GCSMethods.addTaskEventData) { request, _ in
            do throws(TaskEventBatchError) {
                try tasks.add(request.events, batch: request.batch, dropped: request.dropped)
            } catch {
                throw RPCError(code: .invalidArgument, message: error.description)
            }
            return Ray_Rpc_AddTaskEventDataReply()
        }
        router.register(GCSMethods.getTaskEvents) { request, _ in
            guard request.limit >= 0 else { throw RPCError(code: .invalidArgument, message: "limit cannot be negative, got \(request.limit)") }
            return request.countsOnly ? tasks.counts() : tasks.list(limit: Int(request.limit), job: request.jobID)
        }
        self.server = try RPCServer(host: host, port: port, router: router, configuration: configuration)
        var settings = HealthChecker.Settings.fromConfig()
        if let healthCheckPeriod {
            settings.period = healthCheckPeriod
            settings.timeout = min(settings.timeout, healthCheckPeriod * 5)
        }
        if let healthCheckTimeout { settings.timeout = healthCheckTimeout }
        if let healthCheckFailureThreshold { settings.failureThreshold = healthCheckFailureThreshold }
        var checker = HealthChecker(state: state, settings: settings)
        checker.nodeDied = { node, reason in
            await actors.nodeDied(node, reason: reason, expected: false)
            await placementGroups.nodeDied(node)
        }
        self.healthChecks = Task(executorPreference: ThreadExecutor.gcs) { await checker.run() }
    }

    /// Stops health checks and serving; calls in flight get `grace` to finish.
    public func shutdown(grace: Duration = .seconds(1)) async {
        healthChecks.cancel()
        await healthChecks.value
        await server.shutdown(grace: grace)
    }

    deinit { healthChecks.cancel() }

    /// The longest a subscriber's poll is held open before it returns empty.
    static let maxPollWait: Duration = .seconds(30)

    private static func router(_ state: GCSState, _ actors: ActorManager, _ placementGroups: PlacementGroupManager) -> RPCRouter {
        var router = RPCRouter()
        router.register(GCSMethods.registerNode) { request, _ in
            try await state.registerNode(request.nodeInfo)
            await placementGroups.resourcesChanged()
            return Ray_Rpc_RegisterNodeReply()
        }
        router.register(GCSMethods.unregisterNode) { request, _ in
            try await state.unregisterNode(request.nodeID, reason: request.deathReason)
            await actors.nodeDied(request.nodeID, reason: request.deathReason, expected: true)
            await placementGroups.nodeDied(request.nodeID)
            return Ray_Rpc_UnregisterNodeReply()
        }
        router.register(GCSMethods.getAllNodeInfo) { _, _ in
            var reply = Ray_Rpc_GetAllNodeInfoReply()
            reply.nodeInfoList = await state.allNodes()
            return reply
        }
        router.register(GCSMethods.checkAlive) { request, _ in
            var reply = Ray_Rpc_CheckAliveReply()
            reply.alive = await state.alive(request.nodeIds)
            return reply
        }
        router.register(GCSMethods.getNextJobID) { _, _ in
            var reply = Ray_Rpc_GetNextJobIDReply()
            reply.jobID = await state.nextJobNumber()
            return reply
        }
        router.register(GCSMethods.addJob) { request, _ in
            try await state.addJob(request.data)
            return Ray_Rpc_AddJobReply()
        }
        router.register(GCSMethods.markJobFinished) { request, _ in
            try await state.markJobFinished(request.jobID)
            await actors.jobFinished(request.jobID)
            await placementGroups.jobFinished(request.jobID)
            return Ray_Rpc_MarkJobFinishedReply()
        }
        router.register(GCSMethods.getAllJobInfo) { _, _ in
            var reply = Ray_Rpc_GetAllJobInfoReply()
            reply.jobInfoList = await state.allJobs()
            return reply
        }
        router.register(GCSMethods.kvGet) { request, _ in
            var reply = Ray_Rpc_InternalKVGetReply()
            if let value = await state.kvGet(request.namespace, request.key) {
                reply.found = true
                reply.value = value
            }
            return reply
        }
        router.register(GCSMethods.kvPut) { request, _ in
            guard !request.key.isEmpty else { throw RPCError(code: .invalidArgument, message: "an empty key") }
            var reply = Ray_Rpc_InternalKVPutReply()
            reply.addedNum = await state.kvPut(request.namespace, request.key, request.value, overwrite: request.overwrite)
            return reply
        }
        router.register(GCSMethods.kvDel) { request, _ in
            var reply = Ray_Rpc_InternalKVDelReply()
            reply.deletedNum = await state.kvDelete(request.namespace, request.key, byPrefix: request.delByPrefix)
            return reply
        }
        router.register(GCSMethods.kvExists) { request, _ in
            var reply = Ray_Rpc_InternalKVExistsReply()
            reply.exists = await state.kvGet(request.namespace, request.key) != nil
            return reply
        }
        router.register(GCSMethods.kvKeys) { request, _ in
            var reply = Ray_Rpc_InternalKVKeysReply()
            reply.results = await state.kvKeys(request.namespace, prefix: request.prefix)
            return reply
        }
        router.register(GCSMethods.addWorkerInfo) { request, _ in
            try await state.addWorker(request.workerData)
            return Ray_Rpc_AddWorkerInfoReply()
        }
        router.register(GCSMethods.reportWorkerFailure) { request, _ in
            try await state.reportWorkerFailure(request.workerFailure)
            await actors.workerDied(request.workerFailure)
            return Ray_Rpc_ReportWorkerFailureReply()
        }
        router.register(GCSMethods.getAllWorkerInfo) { request, _ in
            guard request.limit >= 0 else { throw RPCError(code: .invalidArgument, message: "limit cannot be negative") }
            let (workers, total) = await state.allWorkers(limit: Int(request.limit))
            var reply = Ray_Rpc_GetAllWorkerInfoReply()
            reply.workerTableData = workers
            reply.total = Int64(total)
            return reply
        }
        router.register(GCSMethods.reportResourceUsage) { request, _ in
            try await state.reportResources(request.resources)
            await placementGroups.resourcesChanged()
            return Ray_Rpc_ReportResourceUsageReply()
        }
        router.register(GCSMethods.getAllResourceUsage) { _, _ in
            var reply = Ray_Rpc_GetAllResourceUsageReply()
            reply.batch = await state.allResources()
            return reply
        }
        router.register(GCSMethods.createActor) { request, _ in
            try await actors.create(request.taskSpec)
        }
        router.register(GCSMethods.getActorInfo) { request, _ in
            var reply = Ray_Rpc_GetActorInfoReply()
            reply.actorTableData = try await actors.actor(request.actorID)
            return reply
        }
        router.register(GCSMethods.getNamedActorInfo) { request, _ in
            var reply = Ray_Rpc_GetNamedActorInfoReply()
            reply.actorTableData = try await actors.namedActor(request.name, namespace: request.rayNamespace)
            return reply
        }
        router.register(GCSMethods.getAllActorInfo) { request, _ in
            var reply = Ray_Rpc_GetAllActorInfoReply()
            reply.actorTableData = try await actors.all(job: request.jobID)
            return reply
        }
        router.register(GCSMethods.killActorViaGcs) { request, _ in
            try await actors.kill(request.actorID)
            return Ray_Rpc_KillActorViaGcsReply()
        }
        router.register(GCSMethods.subscriberPoll) { request, context in
            // Answer well before the caller's deadline (half of what is left, at most two seconds early), so
            // an empty poll is an answer, not a DEADLINE_EXCEEDED, even on a machine loaded enough to delay
            // the answer by a second (seen under AddressSanitizer with the whole suite on two cores).
            var wait = maxPollWait
            if let deadline = context.deadline {
                let remaining = deadline - .now
                wait = min(wait, remaining - min(remaining / 2, .seconds(2)))
            }
            var reply = Ray_Rpc_GcsSubscriberPollReply()
            reply.pubMessages = await state.poll(
                after: request.maxProcessedSequenceID, channels: Set(request.channels), timeout: wait)
            reply.latestSequenceID = await state.latestSequence
            return reply
        }
        return router
    }

    private static func registerPlacementGroups(on router: inout RPCRouter, _ groups: PlacementGroupManager) {
        router.register(GCSMethods.createPlacementGroup) { request, _ in
            try await groups.create([request.placementGroupSpec] + request.moreSpecs)
            return Ray_Rpc_CreatePlacementGroupReply()
        }
        router.register(GCSMethods.removePlacementGroup) { request, _ in
            // Each in turn; the first refusal (an unknown group) is the answer, after the rest are removed.
            try await groups.remove([request.placementGroupID] + request.morePlacementGroupIds)
            return Ray_Rpc_RemovePlacementGroupReply()
        }
        router.register(GCSMethods.getPlacementGroup) { request, _ in
            var reply = Ray_Rpc_GetPlacementGroupReply()
            reply.placementGroupTableData = try await groups.group(request.placementGroupID)
            return reply
        }
        router.register(GCSMethods.getNamedPlacementGroup) { request, _ in
            var reply = Ray_Rpc_GetNamedPlacementGroupReply()
            reply.placementGroupTableData = try await groups.namedGroup(request.name, namespace: request.rayNamespace)
            return reply
        }
        router.register(GCSMethods.getAllPlacementGroup) { request, _ in
            guard request.limit >= 0 else { throw RPCError(code: .invalidArgument, message: "limit cannot be negative") }
            let (list, total) = await groups.all(limit: Int(request.limit))
            var reply = Ray_Rpc_GetAllPlacementGroupReply()
            reply.placementGroupTableData = list
            reply.total = Int64(total)
            return reply
        }
        router.register(GCSMethods.waitPlacementGroupUntilReady) { request, context in
            try await groups.waitUntilReady(request.placementGroupID, deadline: context.deadline)
            return Ray_Rpc_WaitPlacementGroupUntilReadyReply()
        }
    }
}
