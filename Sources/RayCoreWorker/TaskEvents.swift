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

/// Task state transitions this process saw (as owner: submitted, pushed, done; as executor:
/// running), kept in a bounded buffer and sent to the GCS in batches every
/// `task_events_report_interval_ms` on the core worker's thread. Recording is an append under a
/// lock: nothing on the task path waits for the GCS, and a full buffer drops (and counts) rather
/// than blocks, as Ray's TaskEventBuffer does.
final class TaskEvents: Sendable {
    enum State: UInt8 {
        case pendingArgs, pendingNode, submitted, running, finished, failed

        var name: String {
            switch self {
            case .pendingArgs: "PENDING_ARGS_AVAIL"
            case .pendingNode: "PENDING_NODE_ASSIGNMENT"
            case .submitted: "SUBMITTED_TO_WORKER"
            case .running: "RUNNING"
            case .finished: "FINISHED"
            case .failed: "FAILED"
            }
        }
    }

    /// What a task's first event says about it (shared by reference, so recording copies no strings).
    final class Info: Sendable {
        let name: String
        let type: Ray_Rpc_TaskType
        let actorID: Data
        let resources: [String: Double]
        init(name: String, type: Ray_Rpc_TaskType, actorID: Data, resources: [String: Double]) {
            self.name = name
            self.type = type
            self.actorID = actorID
            self.resources = resources
        }
    }

    struct Event: Sendable {
        var taskID: TaskID
        var state: State
        var timeNs: Int64
        var info: Info?
        /// The worker (and its node) for SUBMITTED_TO_WORKER and RUNNING.
        var worker: Ray_Rpc_Address?
        var pid: Int32 = 0
        var error: (type: String, message: String)?
    }

    private struct Buffer {
        var events: [Event] = []
        var dropped: Int64 = 0
        var flushing = false
    }

    let jobID: JobID
    let capacity: Int
    let interval: Duration
    /// Off without a GCS to send to, or with a buffer of 0 (`RAY_task_events_max_buffer_size=0`).
    let enabled: Bool
    private let buffer = Mutex(Buffer())
    private let gcsAddress: String
    private let gcs = Mutex<RPCChannel?>(nil)

    init(jobID: JobID, gcsAddress: String, configuration: RayConfig = RayConfig()) {
        self.jobID = jobID
        self.gcsAddress = gcsAddress
        self.capacity = max(0, configuration[RayConfig.taskEventsMaxBufferSize])
        self.interval = .milliseconds(max(1, configuration[RayConfig.taskEventsReportIntervalMilliseconds]))
        self.enabled = !gcsAddress.isEmpty && capacity > 0
    }

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

    func record(_ event: Event) {
        guard enabled else { return }
        let startFlusher = buffer.withLock { b -> Bool in
            if b.events.count >= capacity {
                b.dropped += 1
            } else {
                b.events.append(event)
            }
            defer { b.flushing = true }
            return !b.flushing
        }
        if startFlusher { flushSoon() }
    }

    func record(_ events: some Sequence<Event>) {
        guard enabled else { return }
        let startFlusher = buffer.withLock { b -> Bool in
            for event in events {
                if b.events.count >= capacity { b.dropped += 1 } else { b.events.append(event) }
            }
            defer { b.flushing = true }
            return !b.flushing
        }
        if startFlusher { flushSoon() }
    }

    /// One send after `interval`; it re-arms itself while events keep coming.
    private func flushSoon() {
        let interval = self.interval
        Task(executorPreference: ThreadExecutor.coreWorker) { [self] in
            try? await ThreadExecutor.coreWorker.sleep(for: interval)
            await flush()
            let more = buffer.withLock { b -> Bool in
                b.flushing = !b.events.isEmpty || b.dropped > 0
                return b.flushing
            }
            if more { flushSoon() }
        }
    }

    /// Sends what is buffered now (also at shutdown).
    func flush() async {
        let (events, dropped) = buffer.withLock { b -> ([Event], Int64) in
            defer {
                b.events.removeAll(keepingCapacity: true)
                b.dropped = 0
            }
            return (b.events, b.dropped)
        }
        guard !events.isEmpty || dropped > 0 else { return }
        var request = Ray_Rpc_AddTaskEventDataRequest()
        request.dropped = dropped
        let job = Data(jobID.bytes)
        request.events = events.map { event in
            var message = Ray_Rpc_TaskEvent()
            message.taskID = Data(event.taskID.bytes)
            message.jobID = job
            message.state = event.state.name
            message.timeNs = event.timeNs
            if let info = event.info {
                message.name = info.name
                message.funcOrClassName = info.name
                message.type = Self.typeName(info.type)
                message.actorID = info.actorID
                message.requiredResources = info.resources
            }
            if let worker = event.worker {
                message.nodeID = worker.nodeID
                message.workerID = worker.workerID
            }
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
