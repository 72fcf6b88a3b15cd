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
import Synchronization

/// An argument of a task: an encoded value, or an object (its value is passed once it exists).
public struct TaskArgument: Sendable {
    enum Kind: Sendable {
        case value([UInt8])
        case reference(ObjectID, owner: Ray_Rpc_Address?)
        /// The value could not be encoded: the task fails with this message instead of running.
        case unencodable(String)
    }
    let kind: Kind
    /// References inside the value: kept alive while the task is in flight.
    var contained: [(ObjectID, Ray_Rpc_Address?)] = []

    public static func value(_ bytes: [UInt8]) -> TaskArgument { TaskArgument(kind: .value(bytes)) }
    /// An encoded value that carries object references.
    public static func value(_ bytes: [UInt8], containing references: [(ObjectID, Ray_Rpc_Address?)]) -> TaskArgument {
        TaskArgument(kind: .value(bytes), contained: references)
    }
    /// A value that did not encode (`message` says which and why): the task's results are this error.
    public static func unencodable(_ message: String) -> TaskArgument { TaskArgument(kind: .unencodable(message)) }

    public static func reference(_ id: ObjectID, owner: Ray_Rpc_Address? = nil) -> TaskArgument {
        TaskArgument(kind: .reference(id, owner: owner))
    }

    /// The encoded bytes of a value argument (nil for a reference or a value that did not encode).
    public var encodedValue: [UInt8]? {
        if case .value(let bytes) = kind { return bytes }
        return nil
    }
}

/// How a task is run: what it needs from the node, where it may run, and how many objects it returns.
public struct TaskOptions: Sendable {
    /// Resources the task holds while it runs (Ray's default: one CPU).
    public var resources: [String: Double] = ["CPU": 1]
    public var numReturns = 1
    /// Where it may run (none set: Ray's default hybrid policy).
    public var schedulingStrategy = Ray_Rpc_SchedulingStrategy()
    /// Ray 2.60's `label_selector`: label key to "value", "!value", "in(a,b)" or "!in(a,b)".
    public var labelSelector: [String: String] = [:]
    public init() {}
}

/// Queues tasks by the resources they need, leases workers for them from the raylet, and pushes
/// each lease's tasks to its worker in batches; results go to the memory store.
final class TaskSubmitter: Sendable {
    struct PendingTask: Sendable {
        var spec: Ray_Rpc_TaskSpec
        var returns: [ObjectID]
        /// Objects passed as arguments (resolved to their values before the push).
        var argumentRefs: [ObjectID]
        /// Objects referenced inside argument values: alive while the task is in flight.
        var containedRefs: [ObjectID] = []
        var taskID: TaskID
        /// When it was submitted (ns since the epoch; 0 without task events), for its task event.
        var created: Int64 = 0
    }

    /// A worker leased from the raylet for one scheduling class.
    struct Lease: Sendable {
        var id: UInt64
        var worker: Ray_Rpc_Address
        var pid: Int32
        /// The raylet that granted it (the worker goes back there).
        var raylet: RPCChannel
        /// The worker's channel, looked up once per lease rather than per push.
        var channel: RPCChannel
        /// When it was last parked idle.
        var idleSince = ContinuousClock.now
    }

    struct ClassState {
        var resources: [String: Double]
        var strategy = Ray_Rpc_SchedulingStrategy()
        var labelSelector: [String: String] = [:]
        var queue: [PendingTask] = []
        var head = 0
        /// Queued tasks below this index were reported as waiting (task events).
        var reported = 0
        var activeLeases = 0
        /// Lease requests waiting at the raylet.
        var requests: Set<UInt64> = []
        /// Leases with nothing to run, kept for `idleLeaseHold` in case more tasks come.
        var idle: [Lease] = []
        var queued: Int { queue.count - head }

        mutating func take(_ count: Int) -> [PendingTask] {
            let n = min(count, queued)
            let batch = Array(queue[head..<head + n])
            head += n
            if head > 1024 && head * 2 > queue.count {
                queue.removeFirst(head)
                reported = max(0, reported - head)
                head = 0
            }
            return batch
        }
    }

    struct State {
        /// Runs `body` on the class state of `key` (which must exist) in place.
        mutating func withClass<R>(_ key: String, _ body: (inout ClassState, inout UInt64) -> R) -> R {
            body(&classes[key]!, &nextID)
        }

        var classes: [String: ClassState] = [:]
        var nextID: UInt64 = 0
        /// Tasks pushed and not answered yet: the worker they run on and the raylet that leased it.
        var inFlight: [TaskID: (worker: Ray_Rpc_Address, raylet: RPCChannel)] = [:]
        /// Lease requests that were spilled to another node's raylet: where they wait now.
        var requestRaylets: [UInt64: RPCChannel] = [:]
        var cancelled: Set<TaskID> = []
        /// Tasks waiting for their object arguments (only while task events are on), and whether
        /// each was reported PENDING_ARGS_AVAIL.
        var awaitingArguments: [TaskID: (task: PendingTask, reported: Bool)] = [:]
        var shutDown = false
        /// An idle-lease sweep is scheduled (one at a time, while leases idle).
        var sweeping = false
    }

    let state = Mutex(State())
    /// The task ID this process's puts are numbered under.
    let putTaskID: TaskID
    private let putCounter = Atomic<UInt32>(0)

    init(jobID: JobID) { putTaskID = TaskID.random(job: jobID) }

    /// How long a lease with no queued work is kept before it goes back to the raylet.
    static let idleLeaseHold: Duration = .milliseconds(10)
    static let maxBatch = 64
    static let maxLeaseRequests = 10

    func nextPutIndex() -> UInt32 { putCounter.add(1, ordering: .relaxed).newValue }

    /// Tasks waiting since before `before` (ns since the epoch) that were not reported yet, at most
    /// `limit`, each returned once for each wait: for their arguments (PENDING_ARGS_AVAIL), then for a
    /// worker (PENDING_NODE_ASSIGNMENT). Each class's queue is in submission order, so this looks
    /// only at queued tasks it has not passed.
    func unreportedWaiting(before: Int64, limit: Int) -> [(task: PendingTask, forArguments: Bool)] {
        state.withLock { s in
            var found: [(task: PendingTask, forArguments: Bool)] = []
            for (id, entry) in s.awaitingArguments where found.count < limit && !entry.reported && entry.task.created < before {
                found.append((entry.task, true))
                s.awaitingArguments[id]?.reported = true
            }
            for key in s.classes.keys where found.count < limit {
                s.withClass(key) { c, _ in
                    var index = max(c.head, c.reported)
                    while index < c.queue.count, found.count < limit, c.queue[index].created > 0, c.queue[index].created < before {
                        found.append((c.queue[index], false))
                        index += 1
                    }
                    c.reported = index
                }
            }
            return found
        }
    }

    /// Stops leasing; idle leases go back at once, waiting requests when the raylet answers them.
    func shutdown() {
        state.withLock { $0.shutDown = true }
    }
}

extension CoreWorker {
    /// Submits a task and returns the IDs of its results at once, each with one local reference the
    /// caller adopts. The task runs when its object arguments exist and a worker is leased for it.
    public func submitTask(_ function: String, arguments: [TaskArgument], options: TaskOptions) -> [ObjectID] {
        let taskID = TaskID.random(job: jobID)
        var spec = Ray_Rpc_TaskSpec()
        spec.functionName = function
        (spec.requiredResources, spec.schedulingStrategy) = placement(options.resources, options.schedulingStrategy)
        spec.labelSelector = options.labelSelector
        let (task, returns) = prepareTask(spec, taskID: taskID, arguments: arguments, numReturns: options.numReturns)
        guard var task else { return returns }
        recordSubmitted(&task)
        if task.argumentRefs.isEmpty {
            enqueue(task)
        } else {
            resolveThenEnqueue(task)
        }
        return returns
    }

    /// Dates the task for its event (reported once it ends: nothing else on the submit path).
    func recordSubmitted(_ task: inout TaskSubmitter.PendingTask) {
        if taskEvents.enabled {
            task.created = TaskEvents.now()
            taskEvents.submitted()
        }
    }

    /// Fills in a task's spec (IDs, caller, arguments: large values promoted to the store) and takes
    /// its references. Returns the results' IDs (owned, one local reference each) and the task, or
    /// no task when an argument did not encode (its results then hold that error).
    func prepareTask(_ spec: Ray_Rpc_TaskSpec, taskID: TaskID, arguments: [TaskArgument], numReturns: Int)
        -> (TaskSubmitter.PendingTask?, [ObjectID])
    {
        let function = spec.functionName
        let returns = (0..<max(1, numReturns)).map { ObjectID(task: taskID, index: UInt32($0 + 1)) }
        for id in returns { store.addOwned(id) }
        for argument in arguments {
            guard case .unencodable(let message) = argument.kind else { continue }
            let failure = TaskFailure(kind: .serialization, type: "", message: message, function: function)
            for id in returns { store.set(id, .error(failure)) }
            return (nil, returns)
        }
        var spec = spec
        spec.taskID = Data(taskID.bytes)
        spec.jobID = Data(jobID.bytes)
        spec.numReturns = Int32(returns.count)
        spec.callerAddress = address
        var refs: [ObjectID] = []
        var args: [Ray_Rpc_TaskArg] = []
        args.reserveCapacity(arguments.count)
        var promoted: [ObjectID] = []
        var contained: [ObjectID] = []
        let threshold = inlineThreshold
        for argument in arguments {
            // (An ObjectRef registered each of these with the store when it was made or decoded.)
            for (id, _) in argument.contained { contained.append(id) }
            var arg = Ray_Rpc_TaskArg()
            switch argument.kind {
            case .value(let bytes) where bytes.count > threshold:
                // A large argument goes to the node's store, as Ray puts it in plasma: the task takes
                // it as an object and runs once it is stored.
                let id = ObjectID(task: submitter.putTaskID, index: submitter.nextPutIndex())
                store.addOwned(id)
                promoted.append(id)
                arg.objectID = Data(id.bytes)
                refs.append(id)
                Task(executorPreference: ThreadExecutor.coreWorker) { [self] in
                    do {
                        let value = try await createShared(id, size: bytes.count, owner: workerID) { destination in
                            bytes.withUnsafeBytes { destination.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
                        }
                        store.set(id, value)
                    } catch let error as RayError {
                        store.set(id, .error(TaskFailure(kind: error.kind, type: "", message: "a \(bytes.count)-byte argument of \(function) could not be stored: \(error.message)", function: function)))
                    } catch {
                        store.set(id, .error(TaskFailure(kind: .system, type: "", message: "\(error)", function: function)))
                    }
                }
            case .value(let bytes): arg.inlineData = Data(bytes)
            case .unencodable: break  // handled above
            case .reference(let id, _):
                arg.objectID = Data(id.bytes)
                refs.append(id)
            }
            args.append(arg)
        }
        spec.args = args
        store.addSubmittedReferences(refs + contained)
        // The task's reference now keeps promoted arguments alive; nothing else refers to them.
        for id in promoted { store.removeLocalReference(id) }
        let task = TaskSubmitter.PendingTask(
            spec: spec, returns: returns, argumentRefs: refs, containedRefs: contained, taskID: taskID)
        return (task, returns)
    }

    /// Fills in object arguments whose values exist; waits for the others first.
    private func resolveThenEnqueue(_ task: TaskSubmitter.PendingTask) {
        if let resolved = try? resolveArguments(task, waiting: false) {
            enqueue(resolved)
            return
        }
        let tracked = taskEvents.enabled
        if tracked { submitter.state.withLock { $0.awaitingArguments[task.taskID] = (task, false) } }
        Task(executorPreference: ThreadExecutor.coreWorker) { [self] in
            let outcome = await awaitArguments(task)
            if tracked { _ = submitter.state.withLock { $0.awaitingArguments.removeValue(forKey: task.taskID) } }
            switch outcome {
            case .success(let resolved): enqueue(resolved)
            case .failure(let failure): finish(task, with: failure)
            }
        }
    }

    /// Waits until every object argument of `task` exists (fetching borrowed ones from their owners),
    /// then returns the task with their values, or why an argument failed.
    func awaitArguments(_ task: TaskSubmitter.PendingTask) async -> Result<TaskSubmitter.PendingTask, TaskFailure> {
        fetchBorrowed(task.argumentRefs.filter { store.value($0) == nil })
        _ = await store.wait(task.argumentRefs, count: task.argumentRefs.count, timeout: nil)
        do {
            return .success(try resolveArguments(task, waiting: true)!)
        } catch let failure as TaskFailure {
            return .failure(failure)
        } catch {
            return .failure(TaskFailure(kind: .system, type: "", message: "\(error)", function: task.spec.functionName))
        }
    }

    /// The task with its object arguments replaced by their values; nil if one is not there yet
    /// (unless `waiting`: then that is an error). An argument that failed fails the task.
    func resolveArguments(_ task: TaskSubmitter.PendingTask, waiting: Bool) throws -> TaskSubmitter.PendingTask? {
        var task = task
        for index in task.spec.args.indices where !task.spec.args[index].objectID.isEmpty && task.spec.args[index].value == nil {
            let id = try ObjectID(bytes: task.spec.args[index].objectID)
            switch store.value(id) {
            case .inline(let bytes): task.spec.args[index].inlineData = Data(bytes)
            case .shared(let offset, let size):
                var location = Ray_Rpc_ObjectLocation()
                location.nodeID = Data(nodeID.bytes)
                location.rayletAddress = rayletAddress
                location.offset = Int64(offset)
                location.size = Int64(size)
                task.spec.args[index].location = location
                task.spec.args[index].ownerAddress = store.owner(of: id) ?? address
            case .remote(let location):
                // On another node: the worker's raylet pulls it there.
                task.spec.args[index].location = location
                task.spec.args[index].ownerAddress = store.owner(of: id) ?? address
            case .error(let failure):
                throw TaskFailure(kind: failure.kind, type: failure.type,
                                  message: "argument \(index) of \(task.spec.functionName) failed: \(failure.message)",
                                  function: failure.function)
            case nil:
                if waiting { throw TaskFailure(kind: .objectLost, type: "", message: "argument \(index) (object \(id)) is gone", function: task.spec.functionName) }
                return nil
            }
        }
        return task
    }

    /// Tasks of one key share leases: the same resources, strategy and label selector.
    private func schedulingKey(_ spec: Ray_Rpc_TaskSpec) -> String {
        let resources = spec.requiredResources
        var key = resources.count == 1 && resources["CPU"] != nil ? "CPU=\(resources["CPU"]!)"
            : resources.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        switch spec.schedulingStrategy.strategy {
        case nil: break
        case .spreadSchedulingStrategy: key += "|spread"
        case .nodeAffinitySchedulingStrategy(let affinity): key += "|node=\(affinity.nodeID.base64EncodedString()),soft=\(affinity.soft)"
        case .placementGroupSchedulingStrategy(let group):
            key += "|pg=\(group.placementGroupID.base64EncodedString()),\(group.placementGroupBundleIndex)"
        }
        if !spec.labelSelector.isEmpty {
            key += "|" + spec.labelSelector.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        }
        return key
    }

    func enqueue(_ task: TaskSubmitter.PendingTask) {
        let key = schedulingKey(task.spec)
        let (wake, requestLease, shutDown) = submitter.state.withLock { s -> (TaskSubmitter.Lease?, UInt64?, Bool) in
            if s.shutDown { return (nil, nil, true) }
            if s.cancelled.remove(task.taskID) != nil { return (nil, nil, true) }
            if s.classes[key] == nil {
                s.classes[key] = TaskSubmitter.ClassState(
                    resources: task.spec.requiredResources, strategy: task.spec.schedulingStrategy,
                    labelSelector: task.spec.labelSelector)
            }
            // Mutated in place (a copy of the class state would copy its whole queue).
            return s.withClass(key) { c, nextID in
                c.queue.append(task)
                if !c.idle.isEmpty { return (c.idle.removeLast(), nil, false) }
                if c.requests.count < min(c.queued, TaskSubmitter.maxLeaseRequests) {
                    nextID += 1
                    c.requests.insert(nextID)
                    return (nil, nextID, false)
                }
                return (nil, nil, false)
            }
        }
        if shutDown {
            finish(task, with: TaskFailure(kind: .taskCancelled, type: "", message: "the task was cancelled before it ran", function: task.spec.functionName))
            return
        }
        // An idle lease takes the task at once, from this thread (the push starts without a hop).
        if let wake { pump(key: key, lease: wake) }
        if let requestLease { Task(executorPreference: ThreadExecutor.coreWorker) { await self.leaseAndRun(key: key, requestID: requestLease) } }
    }

    /// Asks the raylet for a worker (retrying while it is busy, following spillback to the node the
    /// raylet names) and runs queued tasks on it.
    private func leaseAndRun(key: String, requestID: UInt64) async {
        guard let c = submitter.state.withLock({ $0.classes[key] }) else { return }
        var request = Ray_Rpc_RequestWorkerLeaseRequest()
        request.jobID = Data(jobID.bytes)
        request.requiredResources = c.resources
        request.schedulingStrategy = c.strategy
        request.labelSelector = c.labelSelector
        request.ownerAddress = address
        request.schedulingClassName = submitter.state.withLock { s in
            s.classes[key].flatMap { c in c.queued > 0 ? c.queue[c.head].spec.functionName : nil } ?? key
        }
        request.requestID = String(requestID)
        // The head task's arguments in a store: the granting raylet pulls the remote ones first.
        request.dependencies = submitter.state.withLock { s in
            s.classes[key].flatMap { c in c.queued > 0 ? c.queue[c.head].spec.args.filter { if case .location = $0.value { true } else { false } } : nil } ?? []
        }
        let outcome = await lease(request, stillWanted: { [self] in
            submitter.state.withLock { s in
                !s.shutDown && (s.classes[key]?.queued ?? 0) > 0 && s.classes[key]?.requests.contains(requestID) == true
            }
        }, waitingAt: { [self] raylet in
            submitter.state.withLock { $0.requestRaylets[requestID] = raylet }
        })
        submitter.state.withLock { s in
            s.classes[key]?.requests.remove(requestID)
            s.requestRaylets[requestID] = nil
            if case .granted = outcome { s.classes[key]?.activeLeases += 1 }
        }
        let reply: Ray_Rpc_RequestWorkerLeaseReply
        let grantedBy: RPCChannel
        switch outcome {
        case .notNeeded: return
        case .failed(let failure):
            failQueue(key, failure)
            return
        case .granted(let answer, let raylet):
            reply = answer
            grantedBy = raylet
        }
        let channel: RPCChannel
        do {
            channel = try channels.channel(for: reply.workerAddress)
        } catch {
            // A worker address no channel accepts: give the worker back and fail what waits for it.
            failQueue(key, TaskFailure(kind: .system, type: "", message: "cannot reach the leased worker: \(error)", function: request.schedulingClassName))
            submitter.state.withLock { $0.classes[key]?.activeLeases -= 1 }
            var giveBack = Ray_Rpc_ReturnWorkerRequest()
            giveBack.workerID = reply.workerAddress.workerID
            _ = try? await grantedBy.unary(NodeManagerMethods.returnWorker, giveBack, options: CallOptions(timeout: .seconds(10)))
            return
        }
        pump(key: key, lease: TaskSubmitter.Lease(id: requestID, worker: reply.workerAddress, pid: reply.workerPid,
                                                  raylet: grantedBy, channel: channel))
    }

    private func failQueue(_ key: String, _ failure: TaskFailure) {
        let tasks = submitter.state.withLock { s -> [TaskSubmitter.PendingTask] in
            s.classes[key]?.take(Int.max) ?? []
        }
        for task in tasks { finish(task, with: failure) }
    }

    /// Pushes the next batch of queued tasks to the leased worker, and again from the reply's
    /// callback (on the RPC thread, so a reply and the next push cost no hop). With nothing queued
    /// the lease idles for `idleLeaseHold`, then goes back to the raylet.
    private func pump(key: String, lease: TaskSubmitter.Lease) {
        let (batch, startSweep) = submitter.state.withLock { s -> ([TaskSubmitter.PendingTask], Bool) in
            guard s.classes[key] != nil else { return ([], false) }
            let shutDown = s.shutDown
            let batch = s.withClass(key) { c, _ -> [TaskSubmitter.PendingTask] in
                let share = (c.queued + c.activeLeases + c.requests.count - 1) / max(1, c.activeLeases + c.requests.count)
                let batch = c.take(max(1, min(TaskSubmitter.maxBatch, share)))
                if batch.isEmpty, !shutDown {
                    var parked = lease
                    parked.idleSince = .now
                    c.idle.append(parked)
                }
                return batch
            }
            for task in batch { s.inFlight[task.taskID] = (lease.worker, lease.raylet) }
            let startSweep = batch.isEmpty && !shutDown && !s.sweeping
            if startSweep { s.sweeping = true }
            return (batch, startSweep)
        }
        if batch.isEmpty {
            if startSweep { sweepIdleLeases() }
            return
        }
        push(batch, over: lease.channel, to: lease.worker.workerID, on: lease.worker.nodeID) { error in
            if let error {
                self.pushFailed(key: key, lease: lease, batch: batch, error: error)
            } else {
                self.pump(key: key, lease: lease)
            }
        }
    }

    /// Pushes a batch of tasks or actor calls to a worker and completes each from the reply, on the
    /// RPC thread; then `after` runs there with nil, or with the error that failed the push (the
    /// batch's tasks are then left to the caller).
    /// A push to another node is cancelled if the GCS says that node died (so it fails now, not at its
    /// deadline a day later when the node vanished without closing its connections). Pushes on this
    /// node are not tracked: if it dies, so does this process.
    func push(_ batch: [TaskSubmitter.PendingTask], over channel: RPCChannel, to worker: Data, on node: Data,
              after: @escaping @Sendable (RPCError?) -> Void) {
        var request = Ray_Rpc_PushTasksRequest()
        request.tasks = batch.map(\.spec)
        let pushID = node == address.nodeID ? nil : callsToNodes.start(on: node)
        let handle = channel.unary(CoreWorkerMethods.pushTasks, request, options: CallOptions(timeout: .seconds(24 * 3600))) { result in
            if let pushID { self.callsToNodes.remove(pushID, node: node) }
            switch result {
            case .success(let reply):
                for (index, task) in batch.enumerated() {
                    guard index < reply.results.count else {
                        self.finish(task, with: TaskFailure(kind: .system, type: "", message: "the worker returned \(reply.results.count) results for \(batch.count) tasks", function: task.spec.functionName))
                        continue
                    }
                    self.complete(task, reply.results[index], executedBy: worker, on: node, pid: reply.workerPid)
                }
                after(nil)
            case .failure(let error):
                after(error)
            }
        }
        if let pushID { callsToNodes.attach(handle, to: pushID, on: node) }
    }

    private func pushFailed(key: String, lease: TaskSubmitter.Lease, batch: [TaskSubmitter.PendingTask], error: RPCError) {
        channels.forget(lease.worker)
        for task in batch {
            let cancelled = submitter.state.withLock { $0.cancelled.remove(task.taskID) != nil }
            finish(task, with: cancelled
                ? TaskFailure(kind: .taskCancelled, type: "", message: "the task was cancelled (its worker was killed)", function: task.spec.functionName)
                : TaskFailure(kind: .workerCrashed, type: "", message: "the worker (pid=\(lease.pid), node \(Hex.string(lease.worker.nodeID))) running \(task.spec.functionName) died: \(error.message)", function: task.spec.functionName))
        }
        Task(executorPreference: ThreadExecutor.coreWorker) { await self.endLease(key: key, lease: lease, workerDied: true) }
    }

    /// Returns the leases that idled for `idleLeaseHold` (all of them once shut down), then sleeps
    /// until the next one would, while any idle: one timer for all leases rather than one per
    /// parking, which on sync tasks is one per task.
    private func sweepIdleLeases() {
        Task(executorPreference: ThreadExecutor.coreWorker) { [self] in
            var wait = TaskSubmitter.idleLeaseHold
            while true {
                try? await ThreadExecutor.coreWorker.sleep(for: wait)
                let now = ContinuousClock.now
                let (expired, next) = submitter.state.withLock { s -> ([(String, TaskSubmitter.Lease)], Duration?) in
                    let shutDown = s.shutDown
                    var expired: [(String, TaskSubmitter.Lease)] = []
                    var earliest: ContinuousClock.Instant?
                    for key in Array(s.classes.keys) {
                        s.classes[key]!.idle.removeAll { lease in
                            if shutDown || now - lease.idleSince >= TaskSubmitter.idleLeaseHold {
                                expired.append((key, lease))
                                return true
                            }
                            earliest = min(earliest ?? lease.idleSince, lease.idleSince)
                            return false
                        }
                    }
                    guard let earliest else {
                        s.sweeping = false
                        return (expired, nil)
                    }
                    return (expired, earliest + TaskSubmitter.idleLeaseHold - now)
                }
                for (key, lease) in expired { await endLease(key: key, lease: lease, workerDied: false) }
                guard let next else { return }
                wait = next
            }
        }
    }

    /// The lease is over: withdraw lease requests nobody needs any more and give the worker back.
    private func endLease(key: String, lease: TaskSubmitter.Lease, workerDied: Bool) async {
        let requestsToCancel = submitter.state.withLock { s -> [(UInt64, RPCChannel)] in
            s.classes[key]?.activeLeases -= 1
            guard let c = s.classes[key], c.queued == 0, c.activeLeases == 0 else { return [] }
            // Nothing left to run: lease requests still waiting at a raylet are not needed.
            s.classes[key]?.requests = []
            return c.requests.map { ($0, s.requestRaylets[$0] ?? raylet) }
        }
        for (id, waitingAt) in requestsToCancel {
            var cancel = Ray_Rpc_CancelWorkerLeaseRequest()
            cancel.ownerWorkerID = address.workerID
            cancel.requestID = String(id)
            Task(executorPreference: ThreadExecutor.coreWorker) { _ = try? await waitingAt.unary(NodeManagerMethods.cancelWorkerLease, cancel, options: CallOptions(timeout: .seconds(10))) }
        }
        // A dead node's raylet is not asked: it may be cut off, and the call would wait out its deadline.
        guard !callsToNodes.isDead(lease.worker.nodeID) else { return }
        var giveBack = Ray_Rpc_ReturnWorkerRequest()
        giveBack.workerID = lease.worker.workerID
        giveBack.disconnectWorker = workerDied
        _ = try? await lease.raylet.unary(NodeManagerMethods.returnWorker, giveBack, options: CallOptions(timeout: .seconds(10)))
    }

    func complete(_ task: TaskSubmitter.PendingTask, _ result: Ray_Rpc_TaskResult, executedBy worker: Data, on node: Data, pid: Int32) {
        submitter.state.withLock { s in
            s.inFlight[task.taskID] = nil
            s.cancelled.remove(task.taskID)
        }
        if taskEvents.enabled {
            let failure = result.returnObjects.lazy.compactMap { object -> Ray_Rpc_TaskError? in
                if case .error(let error) = object.value { return error }
                return nil
            }.first
            taskEvents.ended(task, state: failure == nil ? .finished : .failed, started: result.startTimeNs,
                             worker: worker, node: node, pid: pid, error: failure.map { (TaskEvents.errorType($0.kind), $0.message) })
        }
        for (index, id) in task.returns.enumerated() {
            if index < result.returnObjects.count {
                store.set(id, ObjectValue(result.returnObjects[index], localNode: Data(nodeID.bytes)))
            } else {
                store.set(id, .error(TaskFailure(kind: .system, type: "", message: "the task returned \(result.returnObjects.count) values, \(task.returns.count) expected", function: task.spec.functionName)))
            }
        }
        guard !result.borrowedRefs.isEmpty, let borrower = try? WorkerID(bytes: worker) else {
            store.removeSubmittedReferences(task.argumentRefs + task.containedRefs)
            return
        }
        // The worker kept references it received: their owners keep the objects until it lets go.
        var forward: [Data: (Ray_Rpc_Address, [ObjectID])] = [:]
        var mine: [ObjectID] = []
        for reference in result.borrowedRefs {
            guard let id = try? ObjectID(bytes: reference.objectID) else { continue }
            if reference.ownerAddress.workerID == address.workerID { mine.append(id) } else {
                forward[reference.ownerAddress.workerID, default: (reference.ownerAddress, [])].1.append(id)
            }
        }
        store.addBorrower(mine, borrower)
        if forward.isEmpty {
            store.removeSubmittedReferences(task.argumentRefs + task.containedRefs)
            return
        }
        // Objects owned elsewhere: tell their owners first, then let go of this task's references.
        Task(executorPreference: ThreadExecutor.coreWorker) { [self] in
            for (_, (owner, ids)) in forward {
                var request = Ray_Rpc_AddBorrowerRequest()
                request.objectIds = ids.map { Data($0.bytes) }
                request.borrowerWorkerID = worker
                _ = try? await channels.channel(for: owner).unary(CoreWorkerMethods.addBorrower, request, options: CallOptions(timeout: .seconds(10)))
            }
            store.removeSubmittedReferences(task.argumentRefs + task.containedRefs)
        }
    }

    func finish(_ task: TaskSubmitter.PendingTask, with failure: TaskFailure) {
        submitter.state.withLock { s in
            s.inFlight[task.taskID] = nil
        }
        if taskEvents.enabled {
            taskEvents.ended(task, state: .failed, started: 0, worker: Data(), node: Data(), pid: 0,
                             error: (TaskEvents.errorType(failure.kind.rawValue), failure.message))
        }
        for id in task.returns { store.set(id, .error(failure)) }
        store.removeSubmittedReferences(task.argumentRefs + task.containedRefs)
    }

    // MARK: cancel

    /// Cancels the task that returns `id`: a queued task fails with `TaskCancelledError` at once; a
    /// running one is interrupted (its Swift task is cancelled, or with `force` its worker is killed).
    /// Cancelling a finished task does nothing.
    public func cancel(_ id: ObjectID, force: Bool = false) async {
        let taskID = id.taskID
        let (queued, running) = submitter.state.withLock { s -> (TaskSubmitter.PendingTask?, (worker: Ray_Rpc_Address, raylet: RPCChannel)?) in
            for key in s.classes.keys {
                let found = s.withClass(key) { c, _ -> TaskSubmitter.PendingTask? in
                    guard let index = c.queue[c.head...].firstIndex(where: { $0.taskID == taskID }) else { return nil }
                    return c.queue.remove(at: index)
                }
                if let found { return (found, nil) }
            }
            if let running = s.inFlight[taskID] {
                s.cancelled.insert(taskID)
                return (nil, running)
            }
            // Not queued yet (its arguments are pending) or already done: mark it, enqueue drops it.
            if store.value(id) == nil { s.cancelled.insert(taskID) }
            return (nil, nil)
        }
        if let queued {
            finish(queued, with: TaskFailure(kind: .taskCancelled, type: "", message: "the task was cancelled before it ran", function: queued.spec.functionName))
            return
        }
        if let (worker, leasedFrom) = running, force {
            // Ray's force=True: the worker process dies. The raylet kills it (the worker may be busy
            // in code that never yields); the push then fails and the task reports TaskCancelledError.
            var kill = Ray_Rpc_ReturnWorkerRequest()
            kill.workerID = worker.workerID
            kill.disconnectWorker = true
            _ = try? await leasedFrom.unary(NodeManagerMethods.returnWorker, kill, options: CallOptions(timeout: .seconds(5)))
        } else if let (worker, _) = running {
            var request = Ray_Rpc_CancelTaskRequest()
            request.taskID = Data(taskID.bytes)
            _ = try? await channels.channel(for: worker).unary(CoreWorkerMethods.cancelTask, request, options: CallOptions(timeout: .seconds(5)))
        } else if submitter.state.withLock({ $0.cancelled.contains(taskID) }) {
            // Waiting on arguments: fail its results now; enqueue will drop it.
            store.set(id, .error(TaskFailure(kind: .taskCancelled, type: "", message: "the task was cancelled before it ran", function: "")))
        }
    }
}
