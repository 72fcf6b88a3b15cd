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

/// The cluster side of leasing: the resource view (the other nodes, from the GCS), spillback to the
/// node the policy picks, work no node can run yet, and jobs whose driver is on another node.
extension NodeManager {
    /// The request's strategy and label selector; INVALID_ARGUMENT if they cannot be read.
    static func schedulingRequest(_ request: Ray_Rpc_RequestWorkerLeaseRequest) throws(RPCError) -> SchedulingRequest {
        let selector: LabelSelector
        do {
            selector = try LabelSelector(request.labelSelector)
        } catch {
            throw RPCError(code: .invalidArgument, message: "\(error)")
        }
        var strategy = SchedulingStrategy.default
        switch request.schedulingStrategy.strategy {
        case .spreadSchedulingStrategy: strategy = .spread
        case .nodeAffinitySchedulingStrategy(let affinity):
            let node = try NodeID(affinity.nodeID, field: "scheduling_strategy.node_affinity.node_id")
            strategy = .nodeAffinity(node, soft: affinity.soft)
        case .placementGroupSchedulingStrategy, nil:
            // A bundle's resources are named for it: the default policy finds the node that has them.
            break
        }
        return SchedulingRequest(resources: ResourceSet(request.requiredResources), strategy: strategy, labelSelector: selector)
    }

    /// A reply that sends the submitter to `node`'s raylet; nil if this raylet does not know where
    /// that raylet is (then the request stays here).
    func spillback(to node: NodeID) -> Ray_Rpc_RequestWorkerLeaseReply? {
        guard let address = rayletAddresses[node] else { return nil }
        var reply = Ray_Rpc_RequestWorkerLeaseReply()
        reply.retryAtRayletAddress = address
        return reply
    }

    /// Waiting requests another node can run now (the policy says so) go there; requests no node
    /// could run are looked at again (a node that fits may have joined).
    func rebalance() {
        var moved: Set<UInt64> = []
        for index in pending.indices {
            let lease = pending[index]
            if lease.grantOrReject { continue }
            if !lease.infeasible && available.covers(lease.resources) { continue }
            switch policy.decide(lease.scheduling, in: view, local: nodeID) {
            case .run(let node) where node != nodeID:
                if let reply = spillback(to: node) {
                    moved.insert(lease.id)
                    lease.continuation.resume(returning: reply)
                }
            case .queue(let node) where lease.infeasible:
                // Feasible again: here, or at the node that can hold it.
                if node == nodeID {
                    pending[index].infeasible = false
                } else if let reply = spillback(to: node) {
                    moved.insert(lease.id)
                    lease.continuation.resume(returning: reply)
                }
            case .run(let node) where node == nodeID && lease.infeasible:
                pending[index].infeasible = false
            case .unschedulable(let message):
                var reply = Ray_Rpc_RequestWorkerLeaseReply()
                reply.unschedulable = true
                reply.message = "\(lease.schedulingClassName) cannot be scheduled: \(message)"
                moved.insert(lease.id)
                lease.continuation.resume(returning: reply)
            default:
                break
            }
        }
        if !moved.isEmpty { pending.removeAll { moved.contains($0.id) } }
    }

    /// Tells the job's driver, once per resource shape, that what it asked for cannot run anywhere
    /// yet (Ray prints such a warning and lets the work wait for a node that fits).
    func warnInfeasible(_ jobID: JobID, _ resources: ResourceSet, _ message: String) {
        guard var job = jobs[jobID], !job.warned.contains(resources) else { return }
        job.warned.insert(resources)
        jobs[jobID] = job
        guard let channel = job.driverChannel else { return }
        var batch = Ray_Rpc_WorkerLogLines()
        batch.pid = getpid()
        batch.isError = true
        batch.lines = ["Warning: The following resource request cannot be scheduled right now: \(resources.rayDescription). No node of the cluster can provide it (\(message)); it waits until a node that can joins the cluster. `ray status` lists it among the pending demands."]
        var request = Ray_Rpc_PublishLogsRequest()
        request.batches = [batch]
        Task(executorPreference: ThreadExecutor.raylet) {
            _ = try? await channel.unary(CoreWorkerMethods.publishLogs, request, options: CallOptions(timeout: .seconds(5)))
        }
    }

    /// A lease came for a job this node has no driver of: learn how to start its workers from the
    /// GCS (its driver runs on another node).
    func adoptJob(_ jobID: JobID) async {
        guard let data = await jobInfo(jobID), !data.isDead, jobs[jobID] == nil, !data.workerLaunch.executable.isEmpty else { return }
        let driverID = (try? WorkerID(bytes: data.driverAddress.workerID)) ?? .nil
        var job = Job(
            driverWorkerID: driverID, driverPID: 0, executable: data.workerLaunch.executable,
            arguments: data.workerLaunch.arguments,
            workingDirectory: data.workerLaunch.workingDir.isEmpty ? nil : data.workerLaunch.workingDir,
            environment: data.workerLaunch.environment)
        job.remote = true
        // A submitted job's program came in its working directory: unpack the same package here and
        // start the workers from this node's copy.
        let environment = data.workerLaunch.environment
        if let uri = environment[RuntimeEnvironment.workingDirURI], let root = environment[RuntimeEnvironment.workingDirPath],
           !uri.isEmpty, !root.isEmpty {
            do {
                let local = try await materializePackage(uri)
                guard jobs[jobID] == nil else { return }  // adopted meanwhile
                job.executable = RuntimeEnvironment.rebase(job.executable, from: root, to: local)
                job.workingDirectory = job.workingDirectory.map { RuntimeEnvironment.rebase($0, from: root, to: local) }
            } catch {
                let message = "raylet: job \(jobID)'s working directory \(uri) could not be set up here: \(error)\n"
                _ = message.withCString { write(STDERR_FILENO, $0, strlen($0)) }
            }
        }
        if data.driverAddress.port > 0 {
            job.driverChannel = try? RPCChannel(host: data.driverAddress.ipAddress, port: Int(data.driverAddress.port))
        }
        jobs[jobID] = job
    }

    /// The GCS says a job ended: a job adopted from another node ends here too.
    func jobEnded(_ jobID: JobID) {
        guard jobs[jobID]?.remote == true else { return }
        endJob(jobID, reason: "its driver finished")
    }

    // MARK: the resource view

    /// A node joined or died (the GCS's node table).
    func applyNode(_ info: Ray_Rpc_GcsNodeInfo) {
        guard let id = try? NodeID(bytes: info.nodeID), id != nodeID else { return }
        if info.state == .dead {
            view.remove(id)
            rayletAddresses[id] = nil
        } else {
            var address = Ray_Rpc_Address()
            address.nodeID = info.nodeID
            address.ipAddress = info.nodeManagerAddress
            address.port = info.nodeManagerPort
            rayletAddresses[id] = address
            let known = view[id]
            let total = known?.total ?? ResourceSet(info.resourcesTotal)
            view.update(id, NodeResources(total: total, available: known?.available ?? total, labels: info.labels))
        }
        schedule()
    }

    /// A node's newest resource report.
    func applyResources(_ data: Ray_Rpc_ResourcesData) {
        guard let id = try? NodeID(bytes: data.nodeID), id != nodeID, let known = view[id] else { return }
        // Totals change too: committed bundles add their named resources.
        view.update(id, NodeResources(total: ResourceSet(data.resourcesTotal), available: ResourceSet(data.resourcesAvailable),
                                      labels: known.labels, acceptsWork: !data.isDraining))
        schedule()
    }

    /// The nodes this raylet knows, for tests and diagnostics.
    func knownNodes() -> [NodeID] { view.orderedIDs }
}
