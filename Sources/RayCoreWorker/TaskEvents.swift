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

        var name: String {
            switch self {
            case .pendingArgsAvail: "PENDING_ARGS_AVAIL"
            case .pendingNodeAssignment: "PENDING_NODE_ASSIGNMENT"
            case .running: "RUNNING"
            case .finished: "FINISHED"
            case .failed: "FAILED"
            }
        }
    }

    struct Event: Sendable {
        var taskID: TaskID
        var state: State
        /// Its name, type, actor and resources: an index into `Buffer.profiles` (-1: none).
        var profile: Int32 = -1
        var created: Int64 = 0
        var started: Int64 = 0
        var ended: Int64 = 0
        var workerID = Data()
        var nodeID = Data()
        var pid: Int32 = 0
        var error: (type: String, message: String)?
        /// The function's name when there is no profile (an executor's RUNNING report).
        var name = ""
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
            actorID = spec.actorTaskSpec.actorID
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
        var profiles: [Profile] = []
        var profileIndex: [Profile: Int32] = [:]
        var lastProfile: Int32 = -1

        /// The profile of a spec: the last one again (a loop submitting one function), or looked up.
        mutating func profile(of spec: Ray_Rpc_TaskSpec) -> Int32 {
            if lastProfile >= 0 {
                let last = profiles[Int(lastProfile)]
                if last.name == spec.functionName, last.type == spec.type,
                   last.actorID == spec.actorTaskSpec.actorID, last.resources == spec.requiredResources {
                    return lastProfile
                }
            }
            let profile = Profile(spec)
            if let index = profileIndex[profile] {
                lastProfile = index
            } else if profiles.count < TaskEvents.maxProfiles {
                lastProfile = Int32(profiles.count)
                profiles.append(profile)
                profileIndex[profile] = lastProfile
            } else {
                return -1
            }
            return lastProfile
        }
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
                    taskID: task.taskID, state: state, profile: b.profile(of: task.spec), created: task.created, started: started,
                    ended: ended, workerID: worker, nodeID: node, pid: pid, error: error))
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
        let (events, dropped, profiles) = buffer.withLock { b -> ([Event], Int64, [Profile]) in
            // At most a batch per report (Ray's task_events_send_batch_size); the rest waits for the next.
            var events = b.ended.isEmpty ? [] : b.ended.removeFirst()
            b.count -= events.count
            for (task, forArguments) in waiting {
                events.append(Event(taskID: task.taskID, state: forArguments ? .pendingArgsAvail : .pendingNodeAssignment,
                                    profile: b.profile(of: task.spec), created: task.created))
            }
            let profiles = b.profiles
            if b.count == 0, b.profiles.count > 1024 {
                // Nothing buffered refers to them any more.
                b.profiles = []
                b.profileIndex = [:]
                b.lastProfile = -1
            }
            for slot in b.running.indices {
                guard let entry = b.running[slot], !entry.reported, entry.started < old,
                      let id = try? TaskID(bytes: entry.taskID) else { continue }
                events.append(Event(taskID: id, state: .running, started: entry.started,
                                    workerID: me.worker, nodeID: me.node, pid: pid, name: entry.name))
                b.running[slot]!.reported = true
            }
            defer { b.dropped = 0 }
            return (events, b.dropped, profiles)
        }
        guard !events.isEmpty || dropped > 0 else { return }
        var request = Ray_Rpc_AddTaskEventDataRequest()
        request.dropped = dropped
        request.events = events.map { event in
            var message = Ray_Rpc_TaskEvent()
            message.taskID = Data(event.taskID.bytes)
            message.jobID = job
            message.state = event.state.name
            message.timeNs = max(event.ended, event.started, event.created)
            message.creationTimeNs = event.created
            message.startTimeNs = event.started
            message.endTimeNs = event.ended
            if event.profile >= 0 {
                let profile = profiles[Int(event.profile)]
                message.name = profile.name
                message.funcOrClassName = profile.name
                message.type = Self.typeName(profile.type)
                message.actorID = profile.actorID
                message.requiredResources = profile.resources
            } else if !event.name.isEmpty {
                message.name = event.name
                message.funcOrClassName = event.name
            }
            message.nodeID = event.nodeID
            message.workerID = event.workerID
            message.workerPid = event.pid
            if let error = event.error {
                message.errorType = error.type
                message.errorMessage = error.message
            }
            return message
        }
        do {
            _ = try await channel().unary(GCSMethods.addTaskEventData, request, options: CallOptions(timeout: .seconds(10)))
        } catch {
            // Lost with the GCS: counted as dropped in the next report.
            buffer.withLock { $0.dropped += Int64(events.count) }
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
