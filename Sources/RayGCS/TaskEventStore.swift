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

    /// A task attempt's key: the ID's 24 bytes as three words (hashing them is cheap, unlike `Data`).
    struct Key: Hashable {
        let a: UInt64, b: UInt64, c: UInt64
        let attempt: Int32

        init(_ id: Data, attempt: Int32) {
            var words: (UInt64, UInt64, UInt64) = (0, 0, 0)
            withUnsafeMutableBytes(of: &words) { raw in
                _ = id.withUnsafeBytes { raw.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(24))) }
            }
            (a, b, c) = words
            self.attempt = attempt
        }
    }

    /// What the store keeps of an attempt (plain values; a TaskRecord message is made only to list it).
    struct Record {
        var taskID = Data()
        var attempt: Int32 = 0
        var jobID = Data()
        var name = ""
        var funcOrClassName = ""
        var type = ""
        var actorID = Data()
        var parentTaskID = Data()
        var nodeID = Data()
        var workerID = Data()
        var workerPid: Int32 = 0
        var requiredResources: [String: Double] = [:]
        var errorType = ""
        var errorMessage = ""
        var state = ""
        var created: Int64 = 0
        var started: Int64 = 0
        var ended: Int64 = 0

        mutating func merge(_ event: Ray_Rpc_TaskEvent) {
            if taskID.isEmpty {
                taskID = event.taskID
                attempt = event.attemptNumber
            }
            if !event.jobID.isEmpty { jobID = event.jobID }
            if !event.name.isEmpty { name = event.name }
            if !event.funcOrClassName.isEmpty { funcOrClassName = event.funcOrClassName }
            if !event.type.isEmpty { type = event.type }
            if !event.actorID.isEmpty { actorID = event.actorID }
            if !event.parentTaskID.isEmpty { parentTaskID = event.parentTaskID }
            if !event.nodeID.isEmpty { nodeID = event.nodeID }
            if !event.workerID.isEmpty { workerID = event.workerID }
            if event.workerPid != 0 { workerPid = event.workerPid }
            if !event.requiredResources.isEmpty { requiredResources = event.requiredResources }
            if !event.errorType.isEmpty { errorType = event.errorType }
            if !event.errorMessage.isEmpty { errorMessage = event.errorMessage }
            let rank = TaskEventStore.rank(event.state), current = TaskEventStore.rank(state)
            // Forward only; of two ends, FAILED stands.
            if rank > current || (rank == current && state != "FAILED") { state = event.state }
            // Explicit times win; an event without them dates the step it reports.
            let created = event.creationTimeNs > 0 ? event.creationTimeNs : (rank >= 0 && rank <= 2 ? event.timeNs : 0)
            let started = event.startTimeNs > 0 ? event.startTimeNs : (rank == 3 ? event.timeNs : 0)
            let ended = event.endTimeNs > 0 ? event.endTimeNs : (rank == 4 ? event.timeNs : 0)
            if created > 0, self.created == 0 || created < self.created { self.created = created }
            if started > 0 { self.started = started }
            if ended > 0 { self.ended = max(self.ended, ended) }
        }

        var message: Ray_Rpc_TaskRecord {
            var task = Ray_Rpc_TaskEvent()
            task.taskID = taskID
            task.attemptNumber = attempt
            task.jobID = jobID
            task.name = name
            task.funcOrClassName = funcOrClassName
            task.type = type
            task.actorID = actorID
            task.parentTaskID = parentTaskID
            task.nodeID = nodeID
            task.workerID = workerID
            task.workerPid = workerPid
            task.requiredResources = requiredResources
            task.errorType = errorType
            task.errorMessage = errorMessage
            task.state = state
            var record = Ray_Rpc_TaskRecord()
            record.task = task
            record.creationTimeNs = created
            record.startTimeNs = started
            record.endTimeNs = ended
            return record
        }
    }

    private struct State {
        var records: [Key: Record] = [:]
        /// Keys in the order they were first seen (FIFO eviction); `head` is the oldest still counted.
        var order: [Key] = []
        var head = 0
        var droppedEvents: Int64 = 0
        var evicted: Int64 = 0
        /// Attempts by (state, name, job): moved on each state change, kept for ended ones evicted.
        var counts: [CountKey: Int64] = [:]

        mutating func count(_ record: Record, _ delta: Int64) { count(CountKey(record), delta) }

        mutating func count(_ key: CountKey, _ delta: Int64) {
            guard !key.state.isEmpty else { return }
            let value = counts[key, default: 0] + delta
            counts[key] = value > 0 ? value : nil
        }
    }

    struct CountKey: Hashable {
        var state: String
        var name: String
        var jobID: Data

        init(_ record: Record) { (state, name, jobID) = (record.state, record.name, record.jobID) }
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
                let key = Key(event.taskID, attempt: event.attemptNumber)
                // One hash per event: the record is found once and merged in place through its index.
                guard let index = s.records.index(forKey: key) else {
                    var record = Record()
                    record.merge(event)
                    s.records[key] = record
                    s.order.append(key)
                    s.count(record, 1)
                    continue
                }
                let before = CountKey(s.records.values[index])
                s.records.values[index].merge(event)
                let after = CountKey(s.records.values[index])
                if after != before {
                    s.count(before, -1)
                    s.count(after, 1)
                }
            }
            while s.records.count > maxTasks, s.head < s.order.count {
                if let gone = s.records.removeValue(forKey: s.order[s.head]) {
                    s.evicted += 1
                    // An ended attempt stays counted; one still pending or running leaves no trace.
                    if TaskEventStore.rank(gone.state) < 4 { s.count(gone, -1) }
                }
                s.head += 1
            }
            // Compact the order list once most of it is evicted keys.
            if s.head > 4096, s.head * 2 > s.order.count {
                s.order.removeFirst(s.head)
                s.head = 0
            }
        }
    }

    /// Attempts by state, name and job.
    func counts() -> Ray_Rpc_GetTaskEventsReply {
        let (counts, total, dropped, evicted) = state.withLock { s in (s.counts, s.records.count, s.droppedEvents, s.evicted) }
        var reply = Ray_Rpc_GetTaskEventsReply()
        reply.total = Int64(total)
        reply.droppedEvents = dropped
        reply.evictedTasks = evicted
        reply.counts = counts.map { key, count in
            var entry = Ray_Rpc_TaskStateCount()
            entry.state = key.state
            entry.name = key.name
            entry.jobID = key.jobID
            entry.count = count
            return entry
        }
        return reply
    }

    /// The newest `limit` attempts (0: all), of `job` if given, oldest first.
    func list(limit: Int, job: Data) -> Ray_Rpc_GetTaskEventsReply {
        let (records, dropped, evicted) = state.withLock { s -> ([Record], Int64, Int64) in
            var rows: [Record] = []
            rows.reserveCapacity(s.records.count)
            for key in s.order[s.head...] {
                guard let record = s.records[key], job.isEmpty || record.jobID == job else { continue }
                rows.append(record)
            }
            return (rows, s.droppedEvents, s.evicted)
        }
        var reply = Ray_Rpc_GetTaskEventsReply()
        reply.total = Int64(records.count)
        let kept = limit > 0 && records.count > limit ? records.suffix(limit) : records[...]
        reply.tasks = kept.map(\.message)
        reply.droppedEvents = dropped
        reply.evictedTasks = evicted
        return reply
    }
}
