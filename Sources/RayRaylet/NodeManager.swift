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

/// The raylet's local scheduler and worker pool: it grants leases of workers to submitters while the
/// node has the resources a lease asks for (queueing the rest in order), starts workers of the job's
/// executable on demand (prestarting one per CPU when a driver registers), reuses idle workers, reaps
/// idle ones above the soft limit, and replaces workers that die while their job runs. It runs on the
/// raylet's thread, its timers and loops too.
actor NodeManager {
    nonisolated var unownedExecutor: UnownedSerialExecutor { ThreadExecutor.raylet.asUnownedSerialExecutor() }

    struct Settings: Sendable {
        var logDirectory: String
        /// Idle workers above this many are stopped once idle for `idleWorkerTimeout`.
        var softLimit: Int
        var idleWorkerTimeout: Duration
        /// How many workers may be starting at once.
        var maxStartingWorkers: Int
        var gcsAddress: String
        var nodeManagerAddress: String
        var objectStoreName: String
        /// The node's address: its workers listen there.
        var host = "127.0.0.1"
        /// Ports the node's workers bind (nil: any free one).
        var workerPorts: ClosedRange<Int>?
    }

    struct Job {
        var driverWorkerID: WorkerID
        var driverPID: pid_t
        var executable: String
        var arguments: [String]
        var workingDirectory: String?
        var environment: [String: String]
        var driverChannel: RPCChannel?
        /// The driver runs on another node: this node learned of the job from the GCS (when a lease
        /// for it came) and ends it when the GCS says so.
        var remote = false
        /// Resource shapes the driver was warned about (infeasible here and everywhere).
        var warned: Set<ResourceSet> = []
        /// Workers that exited before registering, in a row; at `maxStartupFailures` the job's
        /// leases fail instead of starting more.
        var startupFailures = 0
        var lastStartupFailure = ""
    }

    static let maxStartupFailures = 3

    enum WorkerState {
        case starting
        /// Told to stop: neither idle nor leasable any more.
        case exiting
        case idle(since: ContinuousClock.Instant)
        case leased(ResourceSet, blocked: Bool)
    }

    struct Worker {
        var jobID: JobID
        var process: WorkerProcess
        var address: Ray_Rpc_Address?
        var state: WorkerState
        /// Hosts a detached actor: outlives its job's driver.
        var hostsDetachedActor = false
        /// Why this raylet killed it (its exit then says so), e.g. its placement group was removed.
        var killReason: String?
    }

    struct PendingLease {
        var id: UInt64
        /// The owner's worker ID and its request ID (CancelWorkerLease names it).
        var requestKey: String
        var jobID: JobID
        var resources: ResourceSet
        /// For a detached actor: the worker granted outlives the job's driver.
        var detachedActor = false
        /// Strategy and label selector (resources as above).
        var scheduling: SchedulingRequest
        /// Spilled here by another raylet: granted here or rejected, never spilled on.
        var grantOrReject = false
        /// No node could run it when it came (or since): it waits for one that can to join.
        var infeasible = false
        var schedulingClassName = ""
        /// The placement group its resources are reserved in (its lease fails if the group goes).
        var placementGroup: PlacementGroupID?
        var continuation: CheckedContinuation<Ray_Rpc_RequestWorkerLeaseReply, any Error>
    }

    private(set) var settings: Settings
    /// Called when a driver or worker is gone, so the objects it owns can go too.
    private let clientGone: @Sendable (WorkerID) -> Void
    /// Bytes in use in the node's object store (for the resource view).
    private let storeUsed: @Sendable () -> Int64

    /// What the GCS hears from this node, in order: workers coming and going, and the node's
    /// resources whenever they change (the raylet sends them on).
    enum GCSReport: Sendable {
        case workerStarted(Ray_Rpc_WorkerTableData)
        case workerDied(Ray_Rpc_WorkerTableData)
        case resources(Ray_Rpc_ResourcesData)
        case jobFinished(JobID)
    }
    nonisolated let gcsReports: AsyncStream<GCSReport>
    private let gcsReportSink: AsyncStream<GCSReport>.Continuation
    private var lastResources: Ray_Rpc_ResourcesData?
    let nodeID: NodeID
    /// What the node has of its own (without placement-group bundles).
    nonisolated let baseTotal: ResourceSet
    nonisolated let labels: [String: String]
    /// What the node has: its own resources, with committed bundles' named resources added (and the
    /// bundles' own amounts still counted).
    var total: ResourceSet {
        didSet { view.update(nodeID, NodeResources(total: total, available: available, labels: labels, acceptsWork: !draining)) }
    }
    /// What is free here; the view's entry for this node follows it.
    var available: ResourceSet {
        didSet { view.setAvailable(nodeID, available) }
    }
    /// Placement-group bundles reserved on this node (prepared, or committed and usable).
    var bundles: [BundleKey: ReservedBundle] = [:]
    /// Accepted a drain: no new work comes here (``drain(_:)``).
    var draining = false
    /// Groups the GCS said are removed: leases asked for them fail.
    var removedGroups: Set<PlacementGroupID> = []
    /// A resource report is on its way (``reportSoon()``).
    var reportScheduled = false
    var lastBundleReport = ContinuousClock.now - .seconds(1)
    /// The cluster as this raylet sees it: its own node exactly, the others from the GCS.
    var view = ClusterView()
    var policy = SchedulingPolicy()
    /// Other nodes' raylets, for spillback.
    var rayletAddresses: [NodeID: Ray_Rpc_Address] = [:]
    /// Looks a job up in the GCS (a lease for a job whose driver is on another node).
    let jobInfo: @Sendable (JobID) async -> Ray_Rpc_JobTableData?
    /// Looks a placement group up in the GCS (leases waiting for a group not placed here).
    let groupInfo: @Sendable (PlacementGroupID) async -> Ray_Rpc_PlacementGroupTableData?
    /// Fetches a job's working-directory package from the GCS and unpacks it here; its local folder.
    let materializePackage: @Sendable (String) async throws -> String
    var jobs: [JobID: Job] = [:]
    var workers: [WorkerID: Worker] = [:]
    var pending: [PendingLease] = []
    private var nextLeaseID: UInt64 = 0
    private let logs: AsyncStream<(JobID, Ray_Rpc_WorkerLogLines)>.Continuation
    private var forwarder: Task<Void, Never>?
    private var reaper: Task<Void, Never>?

    init(nodeID: NodeID, resources: [String: Double], labels: [String: String] = [:], settings: Settings,
         storeUsed: @escaping @Sendable () -> Int64,
         jobInfo: @escaping @Sendable (JobID) async -> Ray_Rpc_JobTableData? = { _ in nil },
         groupInfo: @escaping @Sendable (PlacementGroupID) async -> Ray_Rpc_PlacementGroupTableData? = { _ in nil },
         materializePackage: @escaping @Sendable (String) async throws -> String = { uri in
             throw RPCError(code: .unavailable, message: "this raylet cannot fetch packages (\(uri))")
         },
         clientGone: @escaping @Sendable (WorkerID) -> Void) {
        self.nodeID = nodeID
        self.labels = labels
        self.jobInfo = jobInfo
        self.groupInfo = groupInfo
        self.materializePackage = materializePackage
        self.clientGone = clientGone
        self.storeUsed = storeUsed
        (gcsReports, gcsReportSink) = AsyncStream<GCSReport>.makeStream()
        self.settings = settings
        self.baseTotal = ResourceSet(resources)
        self.total = baseTotal
        self.available = baseTotal
        view.update(nodeID, NodeResources(total: baseTotal, available: baseTotal, labels: labels))
        let (stream, continuation) = AsyncStream<(JobID, Ray_Rpc_WorkerLogLines)>.makeStream()
        self.logs = continuation
        self.forwarder = nil
        Task(executorPreference: ThreadExecutor.raylet) { await self.startLoops(logStream: stream) }
    }

    func setNodeManagerAddress(_ address: String) { settings.nodeManagerAddress = address }

    /// Pulls a lease's arguments that live on other nodes into this node's store (the raylet sets it).
    private var pullArguments: (@Sendable ([Ray_Rpc_TaskArg], ContinuousClock.Instant?) async -> Void)?
    func setArgumentPuller(_ puller: @escaping @Sendable ([Ray_Rpc_TaskArg], ContinuousClock.Instant?) async -> Void) {
        pullArguments = puller
    }

    private func startLoops(logStream: AsyncStream<(JobID, Ray_Rpc_WorkerLogLines)>) {
        forwarder = Task(executorPreference: ThreadExecutor.raylet) { [weak self] in
            for await (jobID, batch) in logStream {
                guard let channel = await self?.jobs[jobID]?.driverChannel else { continue }
                var request = Ray_Rpc_PublishLogsRequest()
                request.batches = [batch]
                _ = try? await channel.unary(CoreWorkerMethods.publishLogs, request, options: CallOptions(timeout: .seconds(5)))
            }
        }
        reaper = Task(executorPreference: ThreadExecutor.raylet) { [weak self] in
            while !Task.isCancelled {
                try? await ThreadExecutor.raylet.sleep(for: .milliseconds(250))
                await self?.reap()
                await self?.failLeasesOfRemovedGroups()
            }
        }
    }

    /// Stops every worker and fails every waiting lease (the raylet is shutting down).
    func shutdown() {
        forwarder?.cancel()
        reaper?.cancel()
        logs.finish()
        gcsReportSink.finish()
        for lease in pending {
            lease.continuation.resume(throwing: RPCError(code: .unavailable, message: "the raylet is shutting down"))
        }
        pending.removeAll()
        for worker in workers.values { worker.process.signal(SIGKILL) }
    }

    // MARK: clients

    func registerDriver(_ request: Ray_Rpc_RegisterClientRequest) throws -> Void {
        let jobID = try JobID(request.jobID, field: "job_id")
        let driverID = try WorkerID(request.workerID, field: "worker_id")
        guard !request.executable.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "a driver must name its executable (workers re-launch it)")
        }
        guard jobs[jobID] == nil else { throw RPCError(code: .alreadyExists, message: "job \(jobID) already has a driver") }
        var job = Job(
            driverWorkerID: driverID, driverPID: request.pid, executable: request.executable,
            arguments: request.arguments, workingDirectory: request.workingDir.isEmpty ? nil : request.workingDir,
            environment: request.environment)
        if request.address.port > 0 {
            job.driverChannel = try? RPCChannel(host: request.address.ipAddress, port: Int(request.address.port))
        }
        jobs[jobID] = job
        // Prestart a worker per CPU, as Ray does, so the first tasks do not wait for processes to start.
        for _ in 0..<min(settings.softLimit, settings.maxStartingWorkers) { startWorker(for: jobID) }
    }

    func registerWorker(_ request: Ray_Rpc_RegisterClientRequest) throws {
        let workerID = try WorkerID(request.workerID, field: "worker_id")
        guard var worker = workers[workerID], case .starting = worker.state else {
            throw RPCError(code: .notFound, message: "worker \(workerID) was not started by this raylet")
        }
        worker.address = request.address
        worker.address?.nodeID = Data(nodeID.bytes)
        worker.address?.workerID = request.workerID
        worker.state = .idle(since: .now)
        workers[workerID] = worker
        jobs[worker.jobID]?.startupFailures = 0
        gcsReportSink.yield(.workerStarted(tableData(workerID, worker, alive: true)))
        schedule()
    }

    private func tableData(_ id: WorkerID, _ worker: Worker, alive: Bool, exit: String = "") -> Ray_Rpc_WorkerTableData {
        var data = Ray_Rpc_WorkerTableData()
        data.workerAddress = worker.address ?? Ray_Rpc_Address()
        data.workerAddress.workerID = Data(id.bytes)
        data.workerAddress.nodeID = Data(nodeID.bytes)
        data.isAlive = alive
        data.jobID = Data(worker.jobID.bytes)
        data.pid = worker.process.pid
        data.exitDetail = exit
        return data
    }

    /// The job's driver is gone: stop its workers, fail its waiting leases.
    func disconnect(_ workerID: WorkerID, reason: String) {
        if let (jobID, _) = jobs.first(where: { $0.value.driverWorkerID == workerID }) {
            endJob(jobID, reason: reason)
        } else if let worker = workers[workerID] {
            stopLeasing(workerID)
            worker.process.signal(SIGTERM)
            schedule()
        }
    }

    func endJob(_ jobID: JobID, reason: String) {
        guard let job = jobs.removeValue(forKey: jobID) else { return }
        clientGone(job.driverWorkerID)
        // The driver was this node's: the GCS hears that its job ended (the other nodes then end it too).
        if !job.remote { gcsReportSink.yield(.jobFinished(jobID)) }
        for (id, worker) in workers where worker.jobID == jobID && !worker.hostsDetachedActor {
            stopLeasing(id)
            worker.process.signal(SIGKILL)
        }
        pending.removeAll { lease in
            guard lease.jobID == jobID else { return false }
            lease.continuation.resume(throwing: RPCError(code: .cancelled, message: "job \(jobID) ended: \(reason)"))
            return true
        }
        schedule()
    }

    /// The worker is going: it takes no lease again, and what a lease of it held is free (its exit
    /// finds it `exiting` and gives nothing back twice).
    func stopLeasing(_ id: WorkerID) {
        guard let worker = workers[id] else { return }
        if case .leased(let resources, let blocked) = worker.state { available.add(blocked ? resources.withoutCPU : resources) }
        workers[id]?.state = .exiting
    }

    // MARK: leases

    /// Grants a lease when the node has the resources, in order of arrival, or answers where to ask
    /// instead (spillback) when the scheduling policy picks another node. Work no node could run
    /// waits here for one that can to join. Answers `canceled` just before `deadline` if it could not
    /// (so a grant never races the caller giving up), or when the owner withdraws the request.
    func requestLease(_ request: Ray_Rpc_RequestWorkerLeaseRequest, deadline: ContinuousClock.Instant?) async throws
        -> Ray_Rpc_RequestWorkerLeaseReply
    {
        let jobID = try JobID(request.jobID, field: "job_id")
        if let bad = request.requiredResources.first(where: { $0.value < 0 || !$0.value.isFinite }) {
            throw RPCError(code: .invalidArgument, message: "resource \(bad.key) cannot be \(bad.value)")
        }
        let scheduling = try Self.schedulingRequest(request)
        let group = try Self.placementGroup(of: request)
        if let group, removedGroups.contains(group) { return Self.groupRemovedReply(group, request.schedulingClassName) }
        if jobs[jobID] == nil { await adoptJob(jobID) }
        guard jobs[jobID] != nil else {
            throw RPCError(code: .failedPrecondition, message: "job \(jobID) has no driver registered on this node, and the GCS does not know it")
        }
        var infeasible = false
        if request.grantOrReject {
            guard !draining, view[nodeID].map({ $0.isFeasible(scheduling.resources) && scheduling.labelSelector.matches($0.labels) }) == true else {
                var reply = Ray_Rpc_RequestWorkerLeaseReply()
                reply.rejected = true
                reply.message = "node \(nodeID.hex) cannot run \(scheduling.resources)"
                return reply
            }
        } else {
            switch policy.decide(scheduling, in: view, local: nodeID) {
            case .run(let node), .queue(let node):
                if node != nodeID, let reply = spillback(to: node) { return reply }
            case .unschedulable(let message):
                var reply = Ray_Rpc_RequestWorkerLeaseReply()
                reply.unschedulable = true
                reply.message = "\(request.schedulingClassName) cannot be scheduled: \(message)"
                return reply
            case .infeasible(let message):
                infeasible = true
                // Work for a group not placed yet waits for its bundles quietly.
                if group == nil { warnInfeasible(jobID, scheduling.resources, "\(request.schedulingClassName): \(message)") }
            }
        }
        // A lease is granted once its task's arguments are here (Ray's dependency manager): pulled
        // before the request queues for resources, so none are held meanwhile.
        if !infeasible, !request.dependencies.isEmpty, let pullArguments { await pullArguments(request.dependencies, deadline) }
        let resources = scheduling.resources
        nextLeaseID += 1
        let id = nextLeaseID
        let requestKey = request.ownerAddress.workerID.base64EncodedString() + "/" + request.requestID
        let timer: Task<Void, Never>? = deadline.map { deadline in
            // A third of a short deadline: the answer must still cross a loaded machine (seen: 300 ms
            // was not enough under ASan with the suite running in parallel).
            let margin = min(Duration.seconds(1), (deadline - .now) / 3)
            return Task(executorPreference: ThreadExecutor.raylet) { [weak self] in
                try? await ThreadExecutor.raylet.sleep(until: deadline - margin)
                if !Task.isCancelled { await self?.withdraw(id, reason: "not granted before the call's deadline") }
            }
        }
        defer { timer?.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                pending.append(PendingLease(id: id, requestKey: requestKey, jobID: jobID, resources: resources,
                                            detachedActor: request.isDetachedActor, scheduling: scheduling,
                                            grantOrReject: request.grantOrReject, infeasible: infeasible,
                                            schedulingClassName: request.schedulingClassName, placementGroup: group,
                                            continuation: continuation))
                schedule()
            }
        } onCancel: {
            Task(executorPreference: ThreadExecutor.raylet) { await self.abandon(id) }
        }
    }

    /// The owner withdraws a request: true if it was still waiting (it is answered `canceled`).
    func cancelLease(owner: Data, requestID: String) -> Bool {
        let requestKey = owner.base64EncodedString() + "/" + requestID
        guard let lease = pending.first(where: { $0.requestKey == requestKey }) else { return false }
        withdraw(lease.id, reason: "withdrawn by its owner")
        return true
    }

    func withdraw(_ id: UInt64, reason: String) {
        guard let index = pending.firstIndex(where: { $0.id == id }) else { return }
        var reply = Ray_Rpc_RequestWorkerLeaseReply()
        reply.canceled = true
        reply.message = reason
        pending.remove(at: index).continuation.resume(returning: reply)
    }

    /// The caller went away (its call was cancelled): drop the request.
    private func abandon(_ id: UInt64) {
        guard let index = pending.firstIndex(where: { $0.id == id }) else { return }
        pending.remove(at: index).continuation.resume(throwing: CancellationError())
    }

    func returnWorker(_ workerID: WorkerID, disconnect: Bool) throws {
        guard var worker = workers[workerID] else { return }  // it died meanwhile: nothing to give back
        guard case .leased(let resources, let blocked) = worker.state else {
            throw RPCError(code: .failedPrecondition, message: "worker \(workerID) is not leased")
        }
        if !blocked { available.add(resources) } else { available.add(resources.withoutCPU) }
        worker.state = disconnect ? .exiting : .idle(since: .now)
        workers[workerID] = worker
        if disconnect { worker.process.signal(SIGKILL) }
        schedule()
    }

    func setBlocked(_ workerID: WorkerID, _ blocked: Bool) {
        guard var worker = workers[workerID], case .leased(let resources, let wasBlocked) = worker.state,
            wasBlocked != blocked
        else { return }
        let cpu = resources.onlyCPU
        if blocked { available.add(cpu) } else { available.subtract(cpu) }
        worker.state = .leased(resources, blocked: blocked)
        workers[workerID] = worker
        if blocked { schedule() }
    }

    /// Grants what can be granted, in order of arrival, and starts workers the rest will need.
    func schedule() {
        var granted: Set<UInt64> = []
        var needed: [JobID: Int] = [:]
        var idle = workers.filter { if case .idle = $0.value.state { return true } else { return false } }
        for lease in pending where !lease.infeasible && available.covers(lease.resources) {
            guard let (workerID, worker) = idle.first(where: { $0.value.jobID == lease.jobID }) else {
                needed[lease.jobID, default: 0] += 1
                continue
            }
            idle[workerID] = nil
            available.subtract(lease.resources)
            workers[workerID]!.state = .leased(lease.resources, blocked: false)
            workers[workerID]!.hostsDetachedActor = lease.detachedActor
            var reply = Ray_Rpc_RequestWorkerLeaseReply()
            reply.workerAddress = worker.address ?? Ray_Rpc_Address()
            reply.workerPid = worker.process.pid
            granted.insert(lease.id)
            lease.continuation.resume(returning: reply)
        }
        if !granted.isEmpty { pending.removeAll { granted.contains($0.id) } }
        rebalance()
        var starting = workers.values.reduce(0) { count, worker in
            if case .starting = worker.state { return count + 1 } else { return count }
        }
        for (jobID, count) in needed {
            let startingForJob = workers.values.filter { worker in
                if case .starting = worker.state { return worker.jobID == jobID } else { return false }
            }.count
            var toStart = min(count - startingForJob, settings.maxStartingWorkers - starting)
            while toStart > 0 {
                startWorker(for: jobID)
                starting += 1
                toStart -= 1
            }
        }
    }

    /// The job's workers keep exiting before they register: its waiting leases fail, with why.
    private func failLeases(of jobID: JobID) {
        guard let job = jobs[jobID] else { return }
        let message = "\(job.startupFailures) workers of job \(jobID) (\(job.executable)) exited before registering with the raylet; the last \(job.lastStartupFailure)"
        pending.removeAll { lease in
            guard lease.jobID == jobID else { return false }
            lease.continuation.resume(throwing: RPCError(code: .failedPrecondition, message: message))
            return true
        }
    }

    private var logDirectoryMade = false

    private func startWorker(for jobID: JobID) {
        guard let job = jobs[jobID] else { return }
        if !logDirectoryMade {
            // Made with the first worker, so a raylet that never starts one leaves nothing behind.
            try? FileManager.default.createDirectory(atPath: settings.logDirectory, withIntermediateDirectories: true)
            logDirectoryMade = true
        }
        guard job.startupFailures < Self.maxStartupFailures else {
            failLeases(of: jobID)
            return
        }
        let workerID = WorkerID.random()
        var environment = job.environment
        environment["RAY_WORKER_MODE"] = "1"
        environment["RAY_NODE_MANAGER_ADDRESS"] = settings.nodeManagerAddress
        environment["RAY_GCS_ADDRESS"] = settings.gcsAddress
        environment["RAY_JOB_ID"] = jobID.hex
        environment["RAY_WORKER_ID"] = workerID.hex
        environment["RAY_RAYLET_PID"] = String(getpid())
        environment["RAY_NODE_IP_ADDRESS"] = settings.host
        if let ports = settings.workerPorts {
            environment["RAY_MIN_WORKER_PORT"] = String(ports.lowerBound)
            environment["RAY_MAX_WORKER_PORT"] = String(ports.upperBound)
        }
        do {
            let process = try WorkerProcess(
                workerID: workerID, executable: job.executable, arguments: job.arguments, environment: environment,
                workingDirectory: job.workingDirectory, logDirectory: settings.logDirectory,
                onLines: { [logs] pid, isError, lines in
                    var batch = Ray_Rpc_WorkerLogLines()
                    batch.pid = pid
                    batch.isError = isError
                    batch.lines = lines
                    logs.yield((jobID, batch))
                },
                onExit: { [weak self] _, status in
                    Task(executorPreference: ThreadExecutor.raylet) { await self?.workerExited(workerID, status: status) }
                })
            workers[workerID] = Worker(jobID: jobID, process: process, address: nil, state: .starting)
        } catch {
            // A job whose executable cannot start fails its waiting leases instead of retrying forever.
            pending.removeAll { lease in
                guard lease.jobID == jobID else { return false }
                lease.continuation.resume(throwing: RPCError(code: .internalError, message: "\(error)"))
                return true
            }
        }
    }

    private func workerExited(_ workerID: WorkerID, status: Int32) {
        guard let worker = workers.removeValue(forKey: workerID) else { return }
        clientGone(workerID)
        let signalled = status & 0x7F
        var exit = signalled != 0 && signalled != 0x7F ? "killed by signal \(signalled)" : "exited with status \((status >> 8) & 0xFF)"
        if let reason = worker.killReason { exit += " (\(reason))" }
        gcsReportSink.yield(.workerDied(tableData(workerID, worker, alive: false, exit: exit)))
        if case .leased(let resources, let blocked) = worker.state {
            available.add(blocked ? resources.withoutCPU : resources)
        }
        if case .starting = worker.state, jobs[worker.jobID] != nil {
            // It never registered: the job's executable may not run as a worker at all.
            jobs[worker.jobID]!.startupFailures += 1
            jobs[worker.jobID]!.lastStartupFailure =
                "\(exit) (logs: \(settings.logDirectory)/worker-\(workerID.hex)-\(worker.process.pid).err)"
            if jobs[worker.jobID]!.startupFailures >= Self.maxStartupFailures {
                failLeases(of: worker.jobID)
                return
            }
        }
        // A worker that dies while its job runs is replaced up to the prestart count.
        if jobs[worker.jobID] != nil {
            let left = workers.values.filter { $0.jobID == worker.jobID }.count
            if left < settings.softLimit { startWorker(for: worker.jobID) }
        }
        schedule()
    }

    /// Stops idle workers above the soft limit that have idled past the timeout, and ends jobs whose
    /// driver process is gone.
    private func reap() {
        reportResourcesIfChanged()
        for (jobID, job) in jobs where !job.remote && job.driverPID > 0 && kill(job.driverPID, 0) != 0 && errno == ESRCH {
            endJob(jobID, reason: "its driver (pid \(job.driverPID)) exited")
        }
        let now = ContinuousClock.now
        var idle = workers.compactMap { id, worker -> (WorkerID, ContinuousClock.Instant)? in
            if case .idle(let since) = worker.state { return (id, since) } else { return nil }
        }.sorted { $0.1 < $1.1 }
        var excess = workers.count - settings.softLimit
        while excess > 0, let (id, since) = idle.first, now - since > settings.idleWorkerTimeout {
            idle.removeFirst()
            workers[id]?.process.signal(SIGTERM)
            workers[id]?.state = .exiting
            excess -= 1
        }
    }

    // MARK: stats

    private static func shapeKey(_ shape: [String: Double]) -> String {
        shape.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    /// The last report did not reach the GCS: send the next one even if nothing changed.
    func resourceReportFailed() { lastResources = nil }

    func reportResourcesIfChanged() {
        let stats = stats()
        var data = Ray_Rpc_ResourcesData()
        data.nodeID = Data(nodeID.bytes)
        data.resourcesTotal = stats.resourcesTotal
        data.resourcesAvailable = stats.resourcesAvailable
        data.resourceLoad = stats.pendingDemand.sorted { Self.shapeKey($0.shape) < Self.shapeKey($1.shape) }
        data.objectStoreUsedBytes = storeUsed()
        data.numWorkers = stats.numWorkers
        data.isIdle = isIdle
        data.isDraining = draining
        guard data != lastResources else { return }
        lastResources = data
        gcsReportSink.yield(.resources(data))
    }

    func stats() -> Ray_Rpc_GetNodeStatsReply {
        var reply = Ray_Rpc_GetNodeStatsReply()
        reply.resourcesTotal = total.amounts
        reply.resourcesAvailable = available.amounts
        var demand: [ResourceSet: Int32] = [:]
        for lease in pending { demand[lease.resources, default: 0] += 1 }
        reply.pendingDemand = demand.map { shape, count in
            var entry = Ray_Rpc_ResourceDemand()
            entry.shape = shape.amounts
            entry.count = count
            return entry
        }
        reply.numWorkers = Int32(workers.count)
        reply.numIdleWorkers = Int32(workers.values.filter { if case .idle = $0.state { true } else { false } }.count)
        return reply
    }

    /// Workers and their pids (for tests and `ray stop`).
    func workerPIDs() -> [pid_t] { workers.values.map(\.process.pid) }
}

extension ResourceSet {
    var onlyCPU: ResourceSet { ResourceSet(["CPU": self["CPU"]]) }
    var withoutCPU: ResourceSet {
        var copy = self
        copy.subtract(onlyCPU)
        return copy
    }
}
