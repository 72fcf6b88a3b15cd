#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayProtos
import Synchronization

/// The GCS's task table for the state API (Ray's GcsTaskManager): the events owners and executors
/// report, merged per task attempt, at most `maxTasks` attempts (Ray's
/// `task_events_max_num_task_in_gcs`, 100,000), the oldest evicted first and counted.
final class TaskEventStore: Sendable {
    static let defaultMaxTasks = 100_000

    struct Key: Hashable {
        let taskID: Data
        let attempt: Int32
    }

    private struct State {
        var records: [Key: Ray_Rpc_TaskRecord] = [:]
        /// Keys in the order they were first seen (FIFO eviction); `head` is the oldest still counted.
        var order: [Key] = []
        var head = 0
        var droppedEvents: Int64 = 0
        var evicted: Int64 = 0
    }

    let maxTasks: Int
    private let state = Mutex(State())

    init(maxTasks: Int = TaskEventStore.defaultMaxTasks) { self.maxTasks = max(1, maxTasks) }

    /// Where a state stands in a task's life (a late event never moves a task back).
    static func rank(_ state: String) -> Int {
        switch state {
        case "PENDING_ARGS_AVAIL": 0
        case "PENDING_NODE_ASSIGNMENT": 1
        case "SUBMITTED_TO_WORKER": 2
        case "RUNNING": 3
        case "FINISHED", "FAILED": 4
        default: -1
        }
    }

    func add(_ events: [Ray_Rpc_TaskEvent], dropped: Int64) {
        state.withLock { s in
            s.droppedEvents += max(0, dropped)
            for event in events {
                let key = Key(taskID: event.taskID, attempt: event.attemptNumber)
                var record = s.records[key] ?? {
                    s.order.append(key)
                    return Ray_Rpc_TaskRecord()
                }()
                Self.merge(event, into: &record)
                s.records[key] = record
            }
            while s.records.count > maxTasks, s.head < s.order.count {
                if s.records.removeValue(forKey: s.order[s.head]) != nil { s.evicted += 1 }
                s.head += 1
            }
            // Compact the order list once most of it is evicted keys.
            if s.head > 4096, s.head * 2 > s.order.count {
                s.order.removeFirst(s.head)
                s.head = 0
            }
        }
    }

    static func merge(_ event: Ray_Rpc_TaskEvent, into record: inout Ray_Rpc_TaskRecord) {
        var task = record.task
        if task.taskID.isEmpty {
            task.taskID = event.taskID
            task.attemptNumber = event.attemptNumber
        }
        if !event.jobID.isEmpty { task.jobID = event.jobID }
        if !event.name.isEmpty { task.name = event.name }
        if !event.funcOrClassName.isEmpty { task.funcOrClassName = event.funcOrClassName }
        if !event.type.isEmpty { task.type = event.type }
        if !event.actorID.isEmpty { task.actorID = event.actorID }
        if !event.parentTaskID.isEmpty { task.parentTaskID = event.parentTaskID }
        if !event.nodeID.isEmpty { task.nodeID = event.nodeID }
        if !event.workerID.isEmpty { task.workerID = event.workerID }
        if event.workerPid != 0 { task.workerPid = event.workerPid }
        if !event.requiredResources.isEmpty { task.requiredResources = event.requiredResources }
        if !event.errorType.isEmpty { task.errorType = event.errorType }
        if !event.errorMessage.isEmpty { task.errorMessage = event.errorMessage }
        let rank = rank(event.state), current = Self.rank(task.state)
        // Forward only; of two ends, FAILED stands.
        if rank > current || (rank == current && task.state != "FAILED") { task.state = event.state }
        switch rank {
        case 0, 1, 2:
            if record.creationTimeNs == 0 || event.timeNs < record.creationTimeNs { record.creationTimeNs = event.timeNs }
        case 3: record.startTimeNs = event.timeNs
        case 4: record.endTimeNs = max(record.endTimeNs, event.timeNs)
        default: break
        }
        record.task = task
    }

    /// The newest `limit` attempts (0: all), of `job` if given, oldest first.
    func list(limit: Int, job: Data) -> Ray_Rpc_GetTaskEventsReply {
        state.withLock { s in
            var reply = Ray_Rpc_GetTaskEventsReply()
            var rows: [Ray_Rpc_TaskRecord] = []
            for key in s.order[s.head...] {
                guard let record = s.records[key], job.isEmpty || record.task.jobID == job else { continue }
                rows.append(record)
            }
            reply.total = Int64(rows.count)
            if limit > 0, rows.count > limit { rows.removeFirst(rows.count - limit) }
            reply.tasks = rows
            reply.droppedEvents = s.droppedEvents
            reply.evictedTasks = s.evicted
            return reply
        }
    }
}
