#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayProtos

/// Why a reporter's events were refused (nothing of the request is stored).
struct TaskEventBatchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A reporter's batch of events in columns, checked whole before any of it is merged: every column
/// as long as `states` or empty, 24 bytes of task ID per event, known states, indexes within their
/// tables. What events share is made once per batch, and each row is a step referring to it.
struct TaskEventRows {
    let count: Int
    private let batch: Ray_Rpc_TaskEventBatch
    private let profiles: [TaskEventStore.Profile]
    private let executors: [TaskEventStore.Executor]
    private let errors: [TaskEventStore.Failure]

    init(_ batch: Ray_Rpc_TaskEventBatch) throws(TaskEventBatchError) {
        let count = batch.states.count
        guard batch.taskIds.count == count * 24 else {
            throw TaskEventBatchError("the batch has \(count) states and \(batch.taskIds.count) bytes of task IDs (24 per event)")
        }
        let columns: [(String, Int)] = [
            ("attempt_numbers", batch.attemptNumbers.count), ("creation_time_ns", batch.creationTimeNs.count),
            ("start_time_ns", batch.startTimeNs.count), ("end_time_ns", batch.endTimeNs.count),
            ("profiles", batch.profiles.count), ("executors", batch.executors.count), ("errors", batch.errors.count),
        ]
        for (name, length) in columns where length != 0 && length != count {
            throw TaskEventBatchError("the batch's \(name) has \(length) entries for \(count) events")
        }
        if let bad = batch.states.first(where: { $0 < 0 || $0 >= Int32(TaskEventStore.stateNames.count) }) {
            throw TaskEventBatchError("the batch has an unknown state \(bad)")
        }
        for (name, indexes, table) in [("profiles", batch.profiles, batch.profileTable.count),
                                       ("executors", batch.executors, batch.executorTable.count),
                                       ("errors", batch.errors, batch.errorTable.count)] {
            if let bad = indexes.first(where: { $0 < -1 || $0 >= Int32(table) }) {
                throw TaskEventBatchError("the batch's \(name) has index \(bad), and its table \(table) entries")
            }
        }
        self.count = count
        self.batch = batch
        profiles = batch.profileTable.map {
            TaskEventStore.Profile(name: $0.name, funcOrClassName: $0.name, type: $0.type, actorID: $0.actorID, resources: $0.requiredResources)
        }
        executors = batch.executorTable.map { TaskEventStore.Executor(nodeID: $0.nodeID, workerID: $0.workerID, pid: $0.workerPid) }
        errors = batch.errorTable.map { TaskEventStore.Failure(type: $0.errorType, message: $0.errorMessage) }
    }

    func attempt(_ row: Int) -> Int32 { batch.attemptNumbers.isEmpty ? 0 : batch.attemptNumbers[row] }

    func step(_ row: Int) -> TaskEventStore.Record {
        var step = TaskEventStore.Record(attempt: attempt(row))
        step.state = TaskEventStore.StateCode(batch.states[row])
        step.job = batch.jobID
        if !batch.creationTimeNs.isEmpty { step.created = batch.creationTimeNs[row] }
        if !batch.startTimeNs.isEmpty { step.started = batch.startTimeNs[row] }
        if !batch.endTimeNs.isEmpty { step.ended = batch.endTimeNs[row] }
        if !batch.profiles.isEmpty, batch.profiles[row] >= 0 { step.profile = profiles[Int(batch.profiles[row])] }
        if !batch.executors.isEmpty, batch.executors[row] >= 0 { step.executor = executors[Int(batch.executors[row])] }
        if !batch.errors.isEmpty, batch.errors[row] >= 0 { step.error = errors[Int(batch.errors[row])] }
        return step
    }
}
