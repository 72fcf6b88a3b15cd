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
/// (A task still queued is not listed until it runs for a while or ends.)
final class TaskEvents: Sendable {
    /// The states this process reports (Ray's TaskStatus names); the GCS orders them.
    enum State: UInt8 {
        case running, finished, failed

        var name: String {
            switch self {
            case .running: "RUNNING"
            case .finished: "FINISHED"
            case .failed: "FAILED"
            }
        }
    }

    struct Event: Sendable {
        var taskID: TaskID
        var state: State
        /// The task's spec (its name, type, actor and resources), shared, not copied.
        var spec: Ray_Rpc_TaskSpec?
        var created: Int64 = 0
        var started: Int64 = 0
        var ended: Int64 = 0
        var workerID = Data()
        var nodeID = Data()
        var pid: Int32 = 0
        var error: (type: String, message: String)?
    }

    private struct Running {
        var started: Int64
        var reported = false
    }

    private struct Buffer {
        var ended: [Event] = []
        var dropped: Int64 = 0
        var running: [TaskID: Running] = [:]
        var ticking = false
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

    /// The owner has the task's end: reported once, dated from its submission.
    func ended(_ task: TaskSubmitter.PendingTask, state: State, result: Ray_Rpc_TaskResult?, worker: Data, error: (String, String)?) {
        var event = Event(taskID: task.taskID, state: state, spec: task.spec, created: task.created, ended: Self.now())
        event.workerID = worker
        if let result {
            event.started = result.startTimeNs
            event.pid = result.workerPid
            event.nodeID = result.nodeID
        }
        event.error = error
        let tick = buffer.withLock { b -> Bool in
            if b.ended.count < capacity { b.ended.append(event) } else { b.dropped += 1 }
            defer { b.ticking = true }
            return !b.ticking
        }
        if tick { startTicking() }
    }

    /// The executor starts a task; `finishedRunning` when it returns.
    func startedRunning(_ id: TaskID, at time: Int64) {
        let tick = buffer.withLock { b -> Bool in
            if b.running.count < capacity { b.running[id] = Running(started: time) }
            defer { b.ticking = true }
            return !b.ticking
        }
        if tick { startTicking() }
    }

    func finishedRunning(_ id: TaskID) {
        buffer.withLock { _ = $0.running.removeValue(forKey: id) }
    }

    // MARK: reports

    private func startTicking() {
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
        } while buffer.withLock({ !$0.ended.isEmpty }) && ContinuousClock.now < deadline
    }

    /// Sends a batch of what ended, and what has run for a report interval unreported.
    func flush() async {
        let now = Self.now()
        let old = now - Int64(interval / .nanoseconds(1))
        let (me, job) = (self.me.withLock { $0 }, Data(jobID.bytes))
        let (events, dropped) = buffer.withLock { b -> ([Event], Int64) in
            // At most a batch per report (Ray's task_events_send_batch_size); the rest waits for the next.
            var events = Array(b.ended.prefix(sendBatch))
            b.ended.removeFirst(events.count)
            for (id, entry) in b.running where !entry.reported && entry.started < old {
                var event = Event(taskID: id, state: .running, started: entry.started)
                event.workerID = me.worker
                event.nodeID = me.node
                event.pid = getpid()
                events.append(event)
                b.running[id]!.reported = true
            }
            defer { b.dropped = 0 }
            return (events, b.dropped)
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
            if let spec = event.spec {
                message.name = spec.functionName
                message.funcOrClassName = spec.functionName
                message.type = Self.typeName(spec.type)
                message.actorID = spec.actorTaskSpec.actorID
                message.requiredResources = spec.requiredResources
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
