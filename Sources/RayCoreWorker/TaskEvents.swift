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
import RayServices
import Synchronization

/// The state API's view of this process's tasks, sent to the GCS every
/// `task_events_report_interval_ms` on the core worker's thread, at most
/// `task_events_send_batch_size` at a time. As an owner it reports each task once, when it ends
/// (submitted, started, ended, where, how: the start travels back in the task's result); as an
/// executor it reports tasks that have been running for a report interval. So the submit path only
/// reads the clock, the end appends to a buffer under a lock, the GCS merges about one event per
/// task, and a full buffer drops (and counts) rather than blocks, as Ray's TaskEventBuffer does.
/// A task still waiting after a report interval is reported once for each wait, PENDING_ARGS_AVAIL
/// (its object arguments) and PENDING_NODE_ASSIGNMENT (a worker): the owner's queues are looked at
/// on the report, not on submission, and only for what room the report's batch has after the ended
/// tasks (a process ending a batch of tasks each report lists its waiting ones once they end).
final class TaskEvents: Sendable {
    /// The states this process reports (Ray's TaskStatus names); the GCS orders them.
    enum State: UInt8 {
        case pendingArgsAvail, pendingNodeAssignment, running, finished, failed

        /// The GCS's TaskEventState value.
        var code: Int32 {
            switch self {
            case .pendingArgsAvail: Int32(Ray_Rpc_TaskEventState.taskEventPendingArgsAvail.rawValue)
            case .pendingNodeAssignment: Int32(Ray_Rpc_TaskEventState.taskEventPendingNodeAssignment.rawValue)
            case .running: Int32(Ray_Rpc_TaskEventState.taskEventRunning.rawValue)
            case .finished: Int32(Ray_Rpc_TaskEventState.taskEventFinished.rawValue)
            case .failed: Int32(Ray_Rpc_TaskEventState.taskEventFailed.rawValue)
            }
        }

    }

    /// An ended task as the buffer keeps it: values and indexes into what tasks share, ~80 bytes (a
    /// full buffer is 100,000 of them, written at the task rate: measured, the size costs the task
    /// figures).
    struct Event: Sendable {
        var taskID: TaskID
        var state: State
        /// Its name, type, actor and resources: an index into `Buffer.profiles` (-1: none).
        var profile: Int32 = -1
        /// Where it ran: an index into `Buffer.executors` (-1: nowhere).
        var executor: Int32 = -1
        var created: Int64 = 0
        var started: Int64 = 0
        var ended: Int64 = 0
        var error: Failure?
    }

    final class Failure: Sendable {
        let type: String, message: String
        init(type: String, message: String) { (self.type, self.message) = (type, message) }
    }

    struct Executor: Hashable, Sendable {
        var worker: Data
        var node: Data
        var pid: Int32
    }

    /// What tasks of one function (or one actor's method) share, kept once: an event holds an index
    /// rather than the task's spec, so a full buffer does not keep 100,000 specs alive (measured: the
    /// fragmented heap cost the task figures ~10%).
    struct Profile: Hashable, Sendable {
        var name: String
        var type: Ray_Rpc_TaskType
        var actorID: Data
        var resources: [String: Double]

        init(_ spec: Ray_Rpc_TaskSpec) {
            name = spec.functionName
            type = spec.type
            actorID = spec.type == .actorTask ? spec.actorTaskSpec.actorID : Data()
            resources = spec.requiredResources
        }
    }

    /// At most this many profiles between two moments the buffer is empty; past it, events go without.
    static let maxProfiles = 65_536

    /// A task the executor is running: in a slot, so starting and ending one costs no hashing.
    private struct Running {
        var taskID: Data
        var name: String
        var started: Int64
        var reported = false
    }

    private struct Buffer {
        /// Ended tasks in chunks of a send batch: a report takes the oldest chunk whole (no element
        /// moves, however full the buffer), and a full buffer costs one counter increment per task.
        var ended: [[Event]] = []
        var count = 0
        var dropped: Int64 = 0
        var running: [Running?] = []
        var free: [Int] = []
        var profiles = Interned<Profile>()
        var executors = Interned<Executor>()

        /// The index of where a task ran: the last one again (a lease runs many), or looked up.
        mutating func executor(worker: Data, node: Data, pid: Int32) -> Int32 {
            if worker.isEmpty && node.isEmpty && pid == 0 { return -1 }
            return executors.index { last in last.pid == pid && last.worker == worker && last.node == node }
                made: { Executor(worker: worker, node: node, pid: pid) }
        }

        /// The profile of a spec: the last one again (a loop submitting one function), or looked up.
        mutating func profile(of spec: Ray_Rpc_TaskSpec) -> Int32 {
            // The cheap fields first; the actor's ID only for an actor's task (the spec's getter makes
            // an empty sub-message for any other).
            let type = spec.type
            return profiles.index { last in
                last.type == type && last.name == spec.functionName
                    && (type != .actorTask || last.actorID == spec.actorTaskSpec.actorID) && last.resources == spec.requiredResources
            } made: { Profile(spec) }
        }
    }

    /// Values events share, each kept once and referred to by index: the last one is tried first (a
    /// loop submits one function, a lease runs many tasks), then a lookup. At most `maxProfiles`
    /// between two moments the buffer is empty; past it, events go without (-1).
    struct Interned<Value: Hashable> {
        private(set) var values: [Value] = []
        private var index: [Value: Int32] = [:]
        private var last: Int32 = -1

        mutating func index(isLast: (Value) -> Bool, made: () -> Value) -> Int32 {
            if last >= 0, isLast(values[Int(last)]) { return last }
            let value = made()
            if let found = index[value] {
                last = found
            } else if values.count < TaskEvents.maxProfiles {
                last = Int32(values.count)
                values.append(value)
                index[value] = last
            } else {
                return -1
            }
            return last
        }

        /// Forgets them all (when nothing buffered refers to them), if there are more than `limit`.
        mutating func reset(above limit: Int) { if values.count > limit { self = Interned() } }
    }

    let jobID: JobID
    let capacity: Int
    let sendBatch: Int
    let interval: Duration
    /// Off without a GCS to send to, or with a buffer of 0 (`RAY_task_events_max_buffer_size=0`).
    let enabled: Bool
    private let buffer = Mutex(Buffer())
    private let gcsAddress: String
    private let gcs = Mutex<RPCChannel?>(nil)
    /// This process's worker and node, for the RUNNING reports it makes as an executor.
    private let me: Mutex<(worker: Data, node: Data)> = Mutex((Data(), Data()))
    /// This process's pid (for its push replies and RUNNING reports).
    let pid = getpid()
    /// The report loop runs (started by the first task this process submits, runs or ends).
    private let ticking = Atomic<Bool>(false)
    /// The owner's tasks still waiting for a worker (the submitter's queues), looked at each report.
    private let queuedSource = Mutex<(@Sendable (Int64, Int) -> [(task: TaskSubmitter.PendingTask, forArguments: Bool)])?>(nil)

    func setQueuedSource(_ source: @escaping @Sendable (Int64, Int) -> [(task: TaskSubmitter.PendingTask, forArguments: Bool)]) {
        queuedSource.withLock { $0 = source }
    }

    /// A task was submitted: the report loop must run to notice it if it waits long.
    @inline(__always) func submitted() {
        if !ticking.load(ordering: .relaxed) { startTicking() }
    }

    init(jobID: JobID, gcsAddress: String, configuration: RayConfig = RayConfig()) {
        self.jobID = jobID
        self.gcsAddress = gcsAddress
        self.capacity = max(0, configuration[RayConfig.taskEventsMaxBufferSize])
        self.sendBatch = max(1, configuration[RayConfig.taskEventsSendBatchSize])
        self.interval = .milliseconds(max(1, configuration[RayConfig.taskEventsReportIntervalMilliseconds]))
        self.enabled = !gcsAddress.isEmpty && capacity > 0
    }

    func setIdentity(worker: Data, node: Data) { me.withLock { $0 = (worker, node) } }

    private func channel() throws -> RPCChannel {
        if let channel = gcs.withLock({ $0 }) { return channel }
        let channel = try RPCChannel(target: gcsAddress)
        return gcs.withLock { existing in
            if let existing { return existing }
            existing = channel
            return channel
        }
    }

    static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    // MARK: the task path

    /// The owner has the task's end: reported once, dated from its submission. `worker`, `node` and
    /// `pid` say where it ran (empty and 0 when it never did).
    func ended(_ task: TaskSubmitter.PendingTask, state: State, started: Int64, worker: Data, node: Data, pid: Int32,
               error: (String, String)?) {
        let ended = Self.now()
        buffer.withLock { b in
            if b.count < capacity {
                if b.ended.last.map({ $0.count >= sendBatch }) ?? true {
                    b.ended.append([])
                    b.ended[b.ended.count - 1].reserveCapacity(min(sendBatch, capacity))
                }
                b.ended[b.ended.count - 1].append(Event(
                    taskID: task.taskID, state: state, profile: b.profile(of: task.spec),
                    executor: b.executor(worker: worker, node: node, pid: pid), created: task.created, started: started,
                    ended: ended, error: error.map { Failure(type: $0.0, message: $0.1) }))
                b.count += 1
            } else {
                b.dropped += 1
            }
        }
        if !ticking.load(ordering: .relaxed) { startTicking() }
    }

    /// The executor starts a task (its ID's bytes as the spec has them); `finishedRunning` with the
    /// slot this returns when it returns.
    func startedRunning(_ taskID: Data, name: String, at time: Int64) -> Int {
        let slot = buffer.withLock { b -> Int in
            let entry = Running(taskID: taskID, name: name, started: time)
            let slot: Int
            if let reused = b.free.popLast() {
                b.running[reused] = entry
                slot = reused
            } else {
                slot = b.running.count
                b.running.append(entry)
            }
            return slot
        }
        if !ticking.load(ordering: .relaxed) { startTicking() }
        return slot
    }

    func finishedRunning(_ slot: Int) {
        buffer.withLock { b in
            b.running[slot] = nil
            b.free.append(slot)
        }
    }

    // MARK: reports

    private func startTicking() {
        guard ticking.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        let interval = self.interval
        Task(executorPreference: ThreadExecutor.coreWorker) { [weak self] in
            while true {
                try? await ThreadExecutor.coreWorker.sleep(for: interval)
                guard let self else { return }
                await self.flush()
            }
        }
    }

    /// At shutdown: everything still buffered, batch after batch, for at most `limit`.
    func drain(limit: Duration = .seconds(5)) async {
        let deadline = ContinuousClock.now + limit
        repeat {
            await flush()
        } while buffer.withLock({ $0.count > 0 }) && ContinuousClock.now < deadline
    }

    /// Sends a batch of what ended, and what has run for a report interval unreported.
    func flush() async {
        let now = Self.now()
        let old = now - Int64(interval / .nanoseconds(1))
        let (me, job) = (self.me.withLock { $0 }, Data(jobID.bytes))
        // Waiting tasks get what the send batch has left after the ended ones: under load (a full
        // batch of ends each report) none are looked for, so the task figures pay nothing for them.
        let budget = sendBatch - buffer.withLock { $0.ended.first?.count ?? 0 }
        let waiting = budget > 0 ? queuedSource.withLock { $0 }?(old, budget) ?? [] : []
        // What the report takes, under the lock: the oldest chunk whole, the tables as they are (arrays
        // shared, not copied), the waiting tasks' profiles and the running ones. The batch is built
        // outside it (measured: ~1 µs an event on a busy host, which held up every task ending here).
        let taken = buffer.withLock { b in
            // At most a batch per report (Ray's task_events_send_batch_size); the rest waits for the next.
            let ended = b.ended.isEmpty ? [] : b.ended.removeFirst()
            b.count -= ended.count
            let waitingProfiles = waiting.map { b.profile(of: $0.task.spec) }
            let tables = (profiles: b.profiles.values, executors: b.executors.values)
            if b.count == 0 {
                // Nothing buffered refers to them any more.
                b.profiles.reset(above: 1024)
                b.executors.reset(above: 1024)
            }
            var running: [(TaskID, String, Int64)] = []
            for slot in b.running.indices {
                guard let entry = b.running[slot], !entry.reported, entry.started < old,
                      let id = try? TaskID(bytes: entry.taskID) else { continue }
                running.append((id, entry.name, entry.started))
                b.running[slot]!.reported = true
            }
            let dropped = b.dropped
            b.dropped = 0
            return (ended: ended, waitingProfiles: waitingProfiles, tables: tables, running: running, dropped: dropped)
        }
        var batch = BatchBuilder(job: job, capacity: taken.ended.count + waiting.count + taken.running.count,
                                 tables: taken.tables)
        for event in taken.ended {
            batch.add(event.taskID, event.state, created: event.created, started: event.started, ended: event.ended,
                      profile: event.profile, executor: event.executor, error: event.error)
        }
        for ((task, forArguments), profile) in zip(waiting, taken.waitingProfiles) {
            batch.add(task.taskID, forArguments ? .pendingArgsAvail : .pendingNodeAssignment, created: task.created,
                      profile: profile)
        }
        for (id, name, started) in taken.running {
            batch.addRunning(id, name: name, started: started, on: me.worker, me.node, pid: pid)
        }
        var request = Ray_Rpc_AddTaskEventDataRequest()
        request.dropped = taken.dropped
        let sent = batch.count
        if sent > 0 { request.batch = batch.finished() }
        guard sent > 0 || request.dropped > 0 else { return }
        do {
            _ = try await channel().unary(GCSMethods.addTaskEventData, request, options: CallOptions(timeout: .seconds(10)))
        } catch {
            // Lost with the GCS: counted as dropped in the next report.
            buffer.withLock { $0.dropped += Int64(sent) + request.dropped }
        }
    }

    /// A report's events in the GCS's columns, with the profiles and executors they use (each once).
    private struct BatchBuilder {
        private var batch = Ray_Rpc_TaskEventBatch()
        private var ids = Data()
        private var states: [Int32] = [], created: [Int64] = [], started: [Int64] = [], ended: [Int64] = []
        private var profiles: [Int32] = [], executors: [Int32] = [], errors: [Int32] = []
        private var profileTable: [Ray_Rpc_TaskEventProfile] = [], executorTable: [Ray_Rpc_TaskEventExecutor] = []
        private var errorTable: [Ray_Rpc_TaskEventError] = []
        /// The buffer's profile and executor indexes to the batch's; RUNNING reports' names to profiles.
        private var profileSlots: [Int32: Int32] = [:], executorSlots: [Int32: Int32] = [:], nameSlots: [String: Int32] = [:]
        /// This process's own entry, for its RUNNING reports.
        private var mySlot: Int32?
        /// The buffer's tables, as they were when the report took its events.
        private let bufferProfiles: [Profile], bufferExecutors: [Executor]

        var count: Int { states.count }

        init(job: Data, capacity: Int, tables: (profiles: [Profile], executors: [Executor])) {
            (bufferProfiles, bufferExecutors) = tables
            batch.jobID = job
            ids.reserveCapacity(capacity * 24)
            states.reserveCapacity(capacity)
            created.reserveCapacity(capacity)
            started.reserveCapacity(capacity)
            ended.reserveCapacity(capacity)
            profiles.reserveCapacity(capacity)
            executors.reserveCapacity(capacity)
            errors.reserveCapacity(capacity)
        }

        mutating func add(_ id: TaskID, _ state: State, created: Int64 = 0, started: Int64 = 0, ended: Int64 = 0,
                          profile: Int32 = -1, executor: Int32 = -1, error: Failure? = nil) {
            withUnsafeBytes(of: id) { ids.append(contentsOf: $0.prefix(24)) }
            states.append(state.code)
            self.created.append(created)
            self.started.append(started)
            self.ended.append(ended)
            profiles.append(profile < 0 ? -1 : profileSlot(profile))
            executors.append(executor < 0 ? -1 : executorSlot(executor))
            if let error {
                var entry = Ray_Rpc_TaskEventError()
                entry.errorType = error.type
                entry.errorMessage = error.message
                errors.append(Int32(errorTable.count))
                errorTable.append(entry)
            } else {
                errors.append(-1)
            }
        }

        /// An executor's report of a task running for a report interval (only its name known here).
        mutating func addRunning(_ id: TaskID, name: String, started: Int64, on worker: Data, _ node: Data, pid: Int32) {
            withUnsafeBytes(of: id) { ids.append(contentsOf: $0.prefix(24)) }
            states.append(State.running.code)
            created.append(0)
            self.started.append(started)
            ended.append(0)
            if name.isEmpty {
                profiles.append(-1)
            } else if let slot = nameSlots[name] {
                profiles.append(slot)
            } else {
                var entry = Ray_Rpc_TaskEventProfile()
                entry.name = name
                nameSlots[name] = Int32(profileTable.count)
                profiles.append(Int32(profileTable.count))
                profileTable.append(entry)
            }
            if mySlot == nil { mySlot = appendExecutor(Executor(worker: worker, node: node, pid: pid)) }
            executors.append(mySlot!)
            errors.append(-1)
        }

        private mutating func profileSlot(_ index: Int32) -> Int32 {
            if let slot = profileSlots[index] { return slot }
            let profile = bufferProfiles[Int(index)]
            var entry = Ray_Rpc_TaskEventProfile()
            entry.name = profile.name
            entry.type = TaskEvents.typeName(profile.type)
            entry.actorID = profile.actorID
            entry.requiredResources = profile.resources
            let slot = Int32(profileTable.count)
            profileTable.append(entry)
            profileSlots[index] = slot
            return slot
        }

        private mutating func executorSlot(_ index: Int32) -> Int32 {
            if let slot = executorSlots[index] { return slot }
            let slot = appendExecutor(bufferExecutors[Int(index)])
            executorSlots[index] = slot
            return slot
        }

        private mutating func appendExecutor(_ executor: Executor) -> Int32 {
            var entry = Ray_Rpc_TaskEventExecutor()
            entry.workerID = executor.worker
            entry.nodeID = executor.node
            entry.workerPid = executor.pid
            executorTable.append(entry)
            return Int32(executorTable.count - 1)
        }

        /// The batch (columns nothing set in are left empty: 0 or -1 for every event).
        func finished() -> Ray_Rpc_TaskEventBatch {
            var batch = self.batch
            batch.taskIds = ids
            batch.states = states
            if created.contains(where: { $0 != 0 }) { batch.creationTimeNs = created }
            if started.contains(where: { $0 != 0 }) { batch.startTimeNs = started }
            if ended.contains(where: { $0 != 0 }) { batch.endTimeNs = ended }
            if profiles.contains(where: { $0 >= 0 }) { batch.profiles = profiles }
            if executors.contains(where: { $0 >= 0 }) { batch.executors = executors }
            if !errorTable.isEmpty { batch.errors = errors }
            batch.profileTable = profileTable
            batch.executorTable = executorTable
            batch.errorTable = errorTable
            return batch
        }
    }

    /// Ray's ErrorType name for an error kind (the state API's `error_type`).
    static func errorType(_ kind: String) -> String {
        switch kind {
        case "RayTaskError": "TASK_EXECUTION_EXCEPTION"
        case "WorkerCrashedError": "WORKER_DIED"
        case "TaskCancelledError": "TASK_CANCELLED"
        case "ActorDiedError": "ACTOR_DIED"
        case "ObjectLostError": "OBJECT_LOST"
        case "OwnerDiedError": "OWNER_DIED"
        case "RaySerializationError": "TASK_EXECUTION_EXCEPTION"
        case "NodeDiedError": "NODE_DIED"
        case "RaySystemError": "RAY_SYSTEM_ERROR"
        default: kind.isEmpty ? "UNKNOWN" : kind
        }
    }

    static func typeName(_ type: Ray_Rpc_TaskType) -> String {
        switch type {
        case .normalTask: "NORMAL_TASK"
        case .actorCreationTask: "ACTOR_CREATION_TASK"
        case .actorTask: "ACTOR_TASK"
        default: "NORMAL_TASK"
        }
    }
}
