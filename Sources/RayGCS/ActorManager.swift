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

/// The GCS's actor table and scheduler (Ray's GcsActorManager and GcsActorScheduler): it registers an
/// actor, leases a worker for it from a raylet whose node has its resources, runs its initializer
/// there with the actor-creation task, and tracks it PENDING_CREATION → ALIVE → DEAD, publishing
/// every change on the actor channel. An actor dies with its worker process, by `ray.kill`, or with
/// its owner unless it is detached. Runs on the GCS's thread.
actor ActorManager {
    nonisolated var unownedExecutor: UnownedSerialExecutor { ThreadExecutor.gcs.asUnownedSerialExecutor() }
    typealias ActorData = Ray_Rpc_ActorTableData

    private let state: GCSState
    private var actors: [ActorID: ActorData] = [:]
    /// "namespace/name" of actors not DEAD.
    private var named: [String: ActorID] = [:]
    private let raylets: RayletChannels
    private var workerChannels: [String: RPCChannel] = [:]
    /// Who the GCS is when it asks raylets for leases.
    private let leaseOwner = WorkerID.random()
    private var nextLeaseRequest = 0

    init(state: GCSState, raylets: RayletChannels) {
        self.state = state
        self.raylets = raylets
    }

    private static func nameKey(_ namespace: String, _ name: String) -> String { "\(namespace)/\(name)" }

    // MARK: creation

    func create(_ spec: Ray_Rpc_TaskSpec) async throws(RPCError) -> Ray_Rpc_CreateActorReply {
        guard spec.type == .actorCreationTask else {
            throw RPCError(code: .invalidArgument, message: "CreateActor needs an ACTOR_CREATION_TASK, got \(spec.type)")
        }
        let creation = spec.actorCreationTaskSpec
        let id = try ActorID(creation.actorID, field: "actor_creation_task_spec.actor_id")
        _ = try JobID(spec.jobID, field: "job_id")
        guard !creation.typeName.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "actor_creation_task_spec.type_name is empty")
        }
        guard actors[id] == nil else { throw RPCError(code: .alreadyExists, message: "actor \(id) already exists") }
        var reply = Ray_Rpc_CreateActorReply()
        if !creation.name.isEmpty {
            let key = Self.nameKey(creation.rayNamespace, creation.name)
            if let other = named[key] {
                reply.status = Self.status(6, "an actor named '\(creation.name)' already exists in namespace '\(creation.rayNamespace)' (\(other))")
                return reply
            }
            named[key] = id
        }
        var data = ActorData()
        data.actorID = creation.actorID
        data.jobID = spec.jobID
        data.state = .pendingCreation
        data.name = creation.name
        data.rayNamespace = creation.rayNamespace
        data.ownerAddress = spec.callerAddress
        data.isDetached = creation.isDetached
        data.className = creation.className
        data.requiredResources = spec.requiredResources
        data.maxConcurrency = max(1, creation.maxConcurrency)
        actors[id] = data
        await state.publishActor(data)

        // Ask the owner's node first, as Ray does: its raylet applies the scheduling policy and spills
        // the lease to the node that should host the actor (a lease no node can take waits there).
        guard let first = await firstNode(for: spec) else {
            let cause = "the cluster has no live node"
            await markDead(id, cause: cause)
            reply.actor = actors[id] ?? data
            reply.status = Self.status(14, cause)
            return reply
        }
        var node = first
        var raylet: RPCChannel
        do {
            raylet = try channel(to: node)
        } catch {
            await markDead(id, cause: "the raylet at \(node.nodeManagerAddress):\(node.nodeManagerPort) cannot be reached: \(error.message)")
            reply.actor = actors[id] ?? data
            reply.status = Self.status(14, reply.actor.deathCause)
            return reply
        }
        var lease = Ray_Rpc_RequestWorkerLeaseRequest()
        lease.jobID = spec.jobID
        lease.requiredResources = spec.requiredResources
        lease.ownerAddress.workerID = Data(leaseOwner.bytes)
        lease.schedulingClassName = "actor \(creation.className)"
        lease.isDetachedActor = creation.isDetached
        lease.schedulingStrategy = spec.schedulingStrategy
        lease.labelSelector = spec.labelSelector
        var granted: Ray_Rpc_RequestWorkerLeaseReply?
        while granted == nil {
            nextLeaseRequest += 1
            lease.requestID = "actor-\(nextLeaseRequest)"
            do {
                let answer = try await raylet.unary(NodeManagerMethods.requestWorkerLease, lease, options: CallOptions(timeout: .seconds(3600)))
                if answer.unschedulable || answer.infeasible {
                    await markDead(id, cause: answer.message)
                    reply.actor = actors[id] ?? data
                    reply.status = Self.status(9, answer.message)
                    if answer.placementGroupRemoved {
                        reply.creationError.kind = RayError.Kind.actorPlacementGroupRemoved.rawValue
                        reply.creationError.message = answer.message
                        reply.creationError.functionName = spec.functionName
                    }
                    return reply
                }
                if answer.hasRetryAtRayletAddress || answer.rejected {
                    // Spillback: that node's raylet grants it (or rejects it, and the first node decides again).
                    let target = answer.rejected ? first.nodeID : answer.retryAtRayletAddress.nodeID
                    if let next = await state.allNodes().first(where: { $0.nodeID == target && $0.state == .alive }),
                       let channel = try? channel(to: next) {
                        node = next
                        raylet = channel
                    }
                    lease.grantOrReject = !answer.rejected
                    if answer.rejected { try? await ThreadExecutor.gcs.sleep(for: .milliseconds(5)) }
                    continue
                }
                if !answer.canceled { granted = answer }
            } catch {
                await markDead(id, cause: "no worker could be leased for it: \(error.message)")
                reply.actor = actors[id] ?? data
                reply.status = Self.status(14, reply.actor.deathCause)
                return reply
            }
            // Killed, or its owner gone, while it waited for a worker.
            if actors[id]?.state == .dead {
                if let granted { await release(granted.workerAddress.workerID, on: raylet) }
                reply.actor = actors[id]!
                reply.status = Self.status(1, reply.actor.deathCause)
                return reply
            }
        }
        let worker = granted!
        actors[id]?.address = worker.workerAddress
        actors[id]?.address.nodeID = node.nodeID
        actors[id]?.pid = worker.workerPid

        var push = Ray_Rpc_PushTasksRequest()
        push.tasks = [spec]
        let result: Ray_Rpc_PushTasksReply
        do {
            result = try await workerChannel(worker.workerAddress).unary(
                CoreWorkerMethods.pushTasks, push, options: CallOptions(timeout: .seconds(3600)))
        } catch {
            await markDead(id, cause: "its worker (pid=\(worker.workerPid)) died while it was created: \(error.message)")
            await release(worker.workerAddress.workerID, on: raylet)
            reply.actor = actors[id] ?? data
            reply.status = Self.status(14, reply.actor.deathCause)
            return reply
        }
        if let returned = result.results.first?.returnObjects.first, case .error(let failure) = returned.value {
            await markDead(id, cause: "its initializer failed: \(failure.message)")
            await release(worker.workerAddress.workerID, on: raylet)
            reply.actor = actors[id] ?? data
            reply.status = Self.status(2, failure.message)
            reply.creationError = failure
            return reply
        }
        guard actors[id]?.state == .pendingCreation else {
            // Killed (or orphaned) while its initializer ran.
            await release(worker.workerAddress.workerID, on: raylet)
            reply.actor = actors[id] ?? data
            reply.status = Self.status(1, reply.actor.deathCause)
            return reply
        }
        actors[id]?.state = .alive
        let alive = actors[id]!
        await state.publishActor(alive)
        reply.actor = alive
        return reply
    }

    private static func status(_ code: Int32, _ message: String) -> Ray_Rpc_StatusDetail {
        var status = Ray_Rpc_StatusDetail()
        status.code = code
        status.message = message
        return status
    }

    /// Where an actor's lease is asked for first: its owner's node while it lives (its raylet then
    /// decides, with the whole cluster's view), else the head, else any live node.
    private func firstNode(for spec: Ray_Rpc_TaskSpec) async -> Ray_Rpc_GcsNodeInfo? {
        let nodes = await state.allNodes().filter { $0.state == .alive }
        return nodes.first { $0.nodeID == spec.callerAddress.nodeID } ?? nodes.first { $0.isHeadNode } ?? nodes.first
    }

    private func channel(to node: Ray_Rpc_GcsNodeInfo) throws(RPCError) -> RPCChannel { try raylets.channel(to: node) }

    private func rayletChannel(forNode raw: Data) async -> RPCChannel? {
        guard let node = await state.allNodes().first(where: { $0.nodeID == raw }) else { return nil }
        return try? channel(to: node)
    }

    private func workerChannel(_ address: Ray_Rpc_Address) throws(RPCError) -> RPCChannel {
        let key = "\(address.ipAddress):\(address.port)"
        if let channel = workerChannels[key] { return channel }
        let channel = try RPCChannel(target: key)
        workerChannels[key] = channel
        return channel
    }

    /// Ends an actor's lease: the raylet kills its worker process (which may be busy in code that
    /// never yields) and frees its resources.
    private func release(_ workerID: Data, on raylet: RPCChannel) async {
        var request = Ray_Rpc_ReturnWorkerRequest()
        request.workerID = workerID
        request.disconnectWorker = true
        _ = try? await raylet.unary(NodeManagerMethods.returnWorker, request, options: CallOptions(timeout: .seconds(10)))
    }

    private func markDead(_ id: ActorID, cause: String) async {
        guard var data = actors[id], data.state != .dead else { return }
        data.state = .dead
        data.deathCause = cause
        actors[id] = data
        if !data.name.isEmpty { named[Self.nameKey(data.rayNamespace, data.name)] = nil }
        workerChannels["\(data.address.ipAddress):\(data.address.port)"] = nil
        await state.publishActor(data)
    }

    /// Marks the actor dead and has its worker killed.
    private func end(_ id: ActorID, cause: String) async {
        guard let data = actors[id], data.state != .dead else { return }
        await markDead(id, cause: cause)
        if !data.address.workerID.isEmpty, let raylet = await rayletChannel(forNode: data.address.nodeID) {
            await release(data.address.workerID, on: raylet)
        }
    }

    // MARK: queries

    func actor(_ raw: Data) throws(RPCError) -> ActorData {
        let id = try ActorID(raw, field: "actor_id")
        guard let data = actors[id] else { throw RPCError(code: .notFound, message: "no actor \(id)") }
        return data
    }

    func namedActor(_ name: String, namespace: String) throws(RPCError) -> ActorData {
        guard !name.isEmpty else { throw RPCError(code: .invalidArgument, message: "an empty actor name") }
        guard let id = named[Self.nameKey(namespace, name)], let data = actors[id] else {
            throw RPCError(code: .notFound, message: "no live actor named '\(name)' in namespace '\(namespace)'")
        }
        return data
    }

    func all(job raw: Data) throws(RPCError) -> [ActorData] {
        if raw.isEmpty { return Array(actors.values) }
        let job = try JobID(raw, field: "job_id")
        return actors.values.filter { $0.jobID == Data(job.bytes) }
    }

    // MARK: deaths

    func kill(_ raw: Data) async throws(RPCError) {
        let id = try ActorID(raw, field: "actor_id")
        guard actors[id] != nil else { throw RPCError(code: .notFound, message: "no actor \(id)") }
        await end(id, cause: "it was killed by ray.kill")
    }

    /// A worker process died: the actor it hosted is dead, and so are the non-detached actors it owned.
    func workerDied(_ data: Ray_Rpc_WorkerTableData) async {
        let worker = data.workerAddress.workerID
        guard !worker.isEmpty else { return }
        for (id, actor) in actors where actor.state != .dead && actor.address.workerID == worker {
            let how = data.exitDetail.isEmpty ? "" : ": \(data.exitDetail)"
            await markDead(id, cause: "its worker process (pid=\(data.pid)) died\(how)")
        }
        for (id, actor) in actors where actor.state != .dead && !actor.isDetached && actor.ownerAddress.workerID == worker {
            await end(id, cause: "its owner (worker pid=\(data.pid)) died")
        }
    }

    /// A node died: the actors it hosted are dead with Ray's cause (naming the node), and the
    /// non-detached actors whose owner ran there go too.
    func nodeDied(_ raw: Data, reason: String, expected: Bool) async {
        let hex = Hex.string(raw)
        let cause = "The actor died because its node has died. Node Id: \(hex)\n\tthe actor's node was terminated \(expected ? "expectedly" : "unexpectedly"): \(reason)"
        for (id, actor) in actors where actor.state != .dead && actor.address.nodeID == raw {
            await markDead(id, cause: cause)
        }
        for (id, actor) in actors where actor.state != .dead && !actor.isDetached && actor.ownerAddress.nodeID == raw {
            await end(id, cause: "its owner's node \(hex) died")
        }
    }

    /// A job's driver finished: its non-detached actors go with it.
    func jobFinished(_ raw: Data) async {
        for (id, actor) in actors where actor.state != .dead && !actor.isDetached && actor.jobID == raw {
            let job = (try? JobID(bytes: raw)).map { "\($0)" } ?? "?"
            await end(id, cause: "its owner, the driver of job \(job), exited")
        }
    }
}
