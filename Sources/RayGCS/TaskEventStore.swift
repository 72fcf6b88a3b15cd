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

        /// `id`: 24 bytes.
        init(_ id: UnsafeRawBufferPointer, attempt: Int32) {
            var words: (UInt64, UInt64, UInt64) = (0, 0, 0)
            withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: id.prefix(24))) }
            (a, b, c) = words
            self.attempt = attempt
        }

        init(_ id: Data, attempt: Int32) { self = id.withUnsafeBytes { Key($0, attempt: attempt) } }

        var taskID: Data { withUnsafeBytes(of: (a, b, c)) { Data($0) } }
    }

    /// What tasks of one function share (one object per reporter's batch, referenced by its records).
    final class Profile: Sendable {
        let name: String, funcOrClassName: String, type: String
        let actorID: Data
        let resources: [String: Double]

        init(name: String, funcOrClassName: String, type: String, actorID: Data, resources: [String: Double]) {
            (self.name, self.funcOrClassName, self.type, self.actorID, self.resources) = (name, funcOrClassName, type, actorID, resources)
        }

        /// `newer`'s fields where it has them, this one's elsewhere (no new object when one of them is it).
        func updated(by newer: Profile) -> Profile {
            if newer === self { return self }
            let merged = Profile(
                name: newer.name.isEmpty ? name : newer.name,
                funcOrClassName: newer.funcOrClassName.isEmpty ? funcOrClassName : newer.funcOrClassName,
                type: newer.type.isEmpty ? type : newer.type, actorID: newer.actorID.isEmpty ? actorID : newer.actorID,
                resources: newer.resources.isEmpty ? resources : newer.resources)
            if merged.same(as: newer) { return newer }
            return merged.same(as: self) ? self : merged
        }

        private func same(as other: Profile) -> Bool {
            name == other.name && funcOrClassName == other.funcOrClassName && type == other.type
                && actorID == other.actorID && resources == other.resources
        }
    }

    /// Where an attempt ran.
    final class Executor: Sendable {
        let nodeID: Data, workerID: Data
        let pid: Int32

        init(nodeID: Data, workerID: Data, pid: Int32) { (self.nodeID, self.workerID, self.pid) = (nodeID, workerID, pid) }

        func updated(by newer: Executor) -> Executor {
            if newer === self { return self }
            if (newer.nodeID.isEmpty || newer.nodeID == nodeID) && (newer.workerID.isEmpty || newer.workerID == workerID)
                && (newer.pid == 0 || newer.pid == pid) { return self }
            if !newer.nodeID.isEmpty && !newer.workerID.isEmpty && newer.pid != 0 { return newer }
            return Executor(nodeID: newer.nodeID.isEmpty ? nodeID : newer.nodeID, workerID: newer.workerID.isEmpty ? workerID : newer.workerID,
                            pid: newer.pid == 0 ? pid : newer.pid)
        }
    }

    final class Failure: Sendable {
        let type: String, message: String
        init(type: String, message: String) { (self.type, self.message) = (type, message) }
    }

    /// A state as the store keeps it: Ray's TaskStatus, in the order a task goes through them.
    typealias StateCode = UInt8
    static let noState: StateCode = 255
    static let stateNames = ["PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT", "SUBMITTED_TO_WORKER", "RUNNING", "FINISHED", "FAILED"]
    static let failed: StateCode = 5

    static func code(_ state: String) -> StateCode? { stateNames.firstIndex(of: state).map { StateCode($0) } }

    /// Where a state stands in a task's life (a late event never moves a task back): of two ends,
    /// FAILED stands.
    static func rank(_ code: StateCode) -> Int { code == noState ? -1 : code == failed ? 4 : Int(code) }

    /// What the store keeps of an attempt: plain values and references to what attempts share (a
    /// record holds no storage of its own; a TaskRecord message is made only to list it). An event,
    /// however it came (a message of its own or a row of a batch), is a record to merge.
    struct Record {
        var attempt: Int32 = 0
        /// Merged with at least one event (a record made for a lookup is not).
        var seen = false
        var state: StateCode = TaskEventStore.noState
        var job = Data()
        var parentTaskID = Data()
        var profile: Profile?
        var executor: Executor?
        var error: Failure?
        var created: Int64 = 0
        var started: Int64 = 0
        var ended: Int64 = 0

        var name: String { profile?.name ?? "" }

        init(attempt: Int32 = 0) { self.attempt = attempt }

        mutating func merge(_ step: Record) {
            if !step.job.isEmpty { job = step.job }
            if !step.parentTaskID.isEmpty { parentTaskID = step.parentTaskID }
            if let newer = step.profile { profile = profile?.updated(by: newer) ?? newer }
            if let newer = step.executor { executor = executor?.updated(by: newer) ?? newer }
            if let newer = step.error { error = newer }
            if step.state != TaskEventStore.noState {
                let rank = TaskEventStore.rank(step.state), current = TaskEventStore.rank(state)
                if rank > current || (rank == current && state != TaskEventStore.failed) { state = step.state }
            }
            if step.created > 0, created == 0 || step.created < created { created = step.created }
            if step.started > 0 { started = step.started }
            if step.ended > 0 { ended = max(ended, step.ended) }
        }

        func message(_ key: Key) -> Ray_Rpc_TaskRecord {
            var task = Ray_Rpc_TaskEvent()
            task.taskID = key.taskID
            task.attemptNumber = attempt
            task.jobID = job
            if let profile {
                task.name = profile.name
                task.funcOrClassName = profile.funcOrClassName
                task.type = profile.type
                task.actorID = profile.actorID
                task.requiredResources = profile.resources
            }
            task.parentTaskID = parentTaskID
            if let executor {
                task.nodeID = executor.nodeID
                task.workerID = executor.workerID
                task.workerPid = executor.pid
            }
            if let error {
                task.errorType = error.type
                task.errorMessage = error.message
            }
            task.state = state == TaskEventStore.noState ? "" : TaskEventStore.stateNames[Int(state)]
            var record = Ray_Rpc_TaskRecord()
            record.task = task
            record.creationTimeNs = created
            record.startTimeNs = started
            record.endTimeNs = ended
            return record
        }
    }

    /// An event sent as a message of its own, as a step (its time dates the step it reports where the
    /// explicit times are missing).
    static func step(_ event: Ray_Rpc_TaskEvent) -> Record {
        var step = Record(attempt: event.attemptNumber)
        step.state = code(event.state) ?? noState
        step.job = event.jobID
        step.parentTaskID = event.parentTaskID
        if !event.name.isEmpty || !event.funcOrClassName.isEmpty || !event.type.isEmpty || !event.actorID.isEmpty
            || !event.requiredResources.isEmpty {
            step.profile = Profile(name: event.name, funcOrClassName: event.funcOrClassName, type: event.type,
                                   actorID: event.actorID, resources: event.requiredResources)
        }
        if !event.nodeID.isEmpty || !event.workerID.isEmpty || event.workerPid != 0 {
            step.executor = Executor(nodeID: event.nodeID, workerID: event.workerID, pid: event.workerPid)
        }
        if !event.errorType.isEmpty || !event.errorMessage.isEmpty {
            step.error = Failure(type: event.errorType, message: event.errorMessage)
        }
        let rank = Self.rank(step.state)
        step.created = event.creationTimeNs > 0 ? event.creationTimeNs : (rank >= 0 && rank <= 2 ? event.timeNs : 0)
        step.started = event.startTimeNs > 0 ? event.startTimeNs : (rank == 3 ? event.timeNs : 0)
        step.ended = event.endTimeNs > 0 ? event.endTimeNs : (rank == 4 ? event.timeNs : 0)
        return step
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
        /// Records room is made for at once (the table grows to the bound without rehashing).
        let reserved: Int

        init(reserved: Int) { self.reserved = reserved }

        mutating func count(_ record: Record, _ delta: Int64) { count(CountKey(record), delta) }

        mutating func count(_ key: CountKey, _ delta: Int64) {
            guard key.state != TaskEventStore.noState else { return }
            let value = counts[key, default: 0] + delta
            counts[key] = value > 0 ? value : nil
        }

        mutating func merge(_ key: Key, _ step: Record) {
            if records.isEmpty { records.reserveCapacity(reserved) }
            // One hash per event: the record is found (or made) once and merged in place.
            let (before, after): (CountKey?, CountKey) = {
                (record: inout Record) in
                let before = record.seen ? CountKey(record) : nil
                record.seen = true
                record.merge(step)
                return (before, CountKey(record))
            }(&records[key, default: Record(attempt: key.attempt)])
            guard let before else {
                order.append(key)
                count(after, 1)
                return
            }
            if after != before {
                count(before, -1)
                count(after, 1)
            }
        }
    }

    struct CountKey: Hashable {
        var state: StateCode
        var name: String
        var jobID: Data

        init(_ record: Record) { (state, name, jobID) = (record.state, record.name, record.job) }
    }

    let maxTasks: Int
    private let state: Mutex<State>

    init(maxTasks: Int = TaskEventStore.defaultMaxTasks) {
        self.maxTasks = max(1, maxTasks)
        state = Mutex(State(reserved: min(self.maxTasks, 1 << 17) + 1024))
    }

    /// Merges `events`, then `batch`'s (checked first: a bad request changes nothing).
    func add(_ events: [Ray_Rpc_TaskEvent], batch: Ray_Rpc_TaskEventBatch = Ray_Rpc_TaskEventBatch(), dropped: Int64)
        throws(TaskEventBatchError)
    {
        for (index, event) in events.enumerated() where event.taskID.count != 24 {
            throw TaskEventBatchError("event \(index)'s task_id has \(event.taskID.count) bytes, not 24")
        }
        let rows = try TaskEventRows(batch)
        let steps = events.map { (Key($0.taskID, attempt: $0.attemptNumber), Self.step($0)) }
        state.withLock { s in
            s.droppedEvents += max(0, dropped)
            for (key, step) in steps { s.merge(key, step) }
            batch.taskIds.withUnsafeBytes { ids in
                for row in 0..<rows.count {
                    s.merge(Key(UnsafeRawBufferPointer(rebasing: ids[(row * 24)..<(row * 24 + 24)]), attempt: rows.attempt(row)), rows.step(row))
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
            entry.state = TaskEventStore.stateNames[Int(key.state)]
            entry.name = key.name
            entry.jobID = key.jobID
            entry.count = count
            return entry
        }
        return reply
    }

    /// The newest `limit` attempts (0: all), of `job` if given, oldest first.
    func list(limit: Int, job: Data) -> Ray_Rpc_GetTaskEventsReply {
        let (records, dropped, evicted) = state.withLock { s -> ([(Key, Record)], Int64, Int64) in
            var rows: [(Key, Record)] = []
            rows.reserveCapacity(s.records.count)
            for key in s.order[s.head...] {
                guard let record = s.records[key], job.isEmpty || record.job == job else { continue }
                rows.append((key, record))
            }
            return (rows, s.droppedEvents, s.evicted)
        }
        var reply = Ray_Rpc_GetTaskEventsReply()
        reply.total = Int64(records.count)
        let kept = limit > 0 && records.count > limit ? records.suffix(limit) : records[...]
        reply.tasks = kept.map { key, record in record.message(key) }
        reply.droppedEvents = dropped
        reply.evictedTasks = evicted
        return reply
    }
}
