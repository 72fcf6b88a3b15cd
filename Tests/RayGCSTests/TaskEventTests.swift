import Foundation
import RayCommon
@testable import RayGCS
import RayProtos
import RayRPC
import RayServices
import Testing

@Suite struct TaskEventStoreTests {
    static func event(_ id: UInt8, _ state: String, at time: Int64, name: String = "") -> Ray_Rpc_TaskEvent {
        var event = Ray_Rpc_TaskEvent()
        event.taskID = Data([id] + [UInt8](repeating: 0, count: 23))
        event.state = state
        event.timeNs = time
        event.name = name
        return event
    }

    @Test func eventsOfAnAttemptMergeAndALateOneNeverMovesItBack() throws {
        let store = TaskEventStore()
        var running = Self.event(1, "RUNNING", at: 20)
        running.workerPid = 42
        try store.add([Self.event(1, "PENDING_NODE_ASSIGNMENT", at: 10, name: "square"), Self.event(1, "FINISHED", at: 30)], dropped: 0)
        try store.add([running], dropped: 2)  // the executor's event arrives after the owner's end
        let reply = store.list(limit: 0, job: Data())
        #expect(reply.tasks.count == 1 && reply.total == 1 && reply.droppedEvents == 2)
        let record = reply.tasks[0]
        #expect(record.task.state == "FINISHED")
        #expect(record.task.name == "square" && record.task.workerPid == 42)
        #expect(record.creationTimeNs == 10 && record.startTimeNs == 20 && record.endTimeNs == 30)
    }

    @Test func failedStandsOverFinished() throws {
        let store = TaskEventStore()
        try store.add([Self.event(1, "FAILED", at: 5), Self.event(1, "FINISHED", at: 6)], dropped: 0)
        #expect(store.list(limit: 0, job: Data()).tasks[0].task.state == "FAILED")
    }

    @Test func theOldestAreEvictedPastTheBoundAndCounted() throws {
        let store = TaskEventStore(maxTasks: 3)
        try store.add((1...5).map { Self.event($0, "FINISHED", at: Int64($0)) }, dropped: 0)
        let reply = store.list(limit: 0, job: Data())
        #expect(reply.tasks.map { $0.task.taskID.first } == [3, 4, 5])
        #expect(reply.evictedTasks == 2)
        #expect(store.list(limit: 2, job: Data()).tasks.map { $0.task.taskID.first } == [4, 5])  // the newest
    }

    /// The ray_tasks counts: an attempt counts once, in its current state and under its name (even
    /// when the name arrives with a later event); evicted, an ended one stays counted and a running
    /// one does not.
    @Test func countsFollowEachAttemptsStateAndSurviveEvictionOnlyWhenEnded() throws {
        let store = TaskEventStore(maxTasks: 2)
        func counts() -> [String: Int64] {
            Dictionary(uniqueKeysWithValues: store.counts().counts.map { ("\($0.state) \($0.name)", $0.count) })
        }
        try store.add([Self.event(1, "RUNNING", at: 1), Self.event(2, "RUNNING", at: 2, name: "square")], dropped: 0)
        #expect(counts() == ["RUNNING ": 1, "RUNNING square": 1])
        try store.add([Self.event(1, "FINISHED", at: 3, name: "square")], dropped: 0)
        #expect(counts() == ["FINISHED square": 1, "RUNNING square": 1])
        try store.add([Self.event(2, "FINISHED", at: 4)], dropped: 0)  // a late RUNNING never moves it back
        try store.add([Self.event(2, "RUNNING", at: 5)], dropped: 0)
        #expect(counts() == ["FINISHED square": 2])
        // Attempts 3 and 4 evict 1 and 2 (ended: still counted), then 5 evicts 3 (running: gone).
        try store.add([Self.event(3, "RUNNING", at: 6, name: "cube"), Self.event(4, "FAILED", at: 7, name: "cube")], dropped: 0)
        try store.add([Self.event(5, "FINISHED", at: 8, name: "cube")], dropped: 0)
        #expect(counts() == ["FINISHED square": 2, "FAILED cube": 1, "FINISHED cube": 1])
        #expect(store.counts().total == 2 && store.counts().evictedTasks == 3)
    }

    /// A batch in columns, as core workers send it: an owner's ended tasks (one profile, one
    /// executor, an error), an executor's RUNNING report with only a name, merged with each other and
    /// with a message event, whichever comes first.
    static func batch(_ ids: [UInt8], states: [Ray_Rpc_TaskEventState], ended: [Int64] = [], profiles: [Int32] = [],
                      executors: [Int32] = [], errors: [Int32] = []) -> Ray_Rpc_TaskEventBatch {
        var batch = Ray_Rpc_TaskEventBatch()
        batch.jobID = Data([7, 0, 0, 0])
        batch.taskIds = Data(ids.flatMap { [$0] + [UInt8](repeating: 0, count: 23) })
        batch.states = states.map { Int32($0.rawValue) }
        batch.endTimeNs = ended
        batch.profiles = profiles
        batch.executors = executors
        batch.errors = errors
        var profile = Ray_Rpc_TaskEventProfile()
        profile.name = "square"
        profile.type = "NORMAL_TASK"
        profile.requiredResources = ["CPU": 1]
        batch.profileTable = [profile]
        var executor = Ray_Rpc_TaskEventExecutor()
        executor.workerID = Data(repeating: 9, count: 28)
        executor.nodeID = Data(repeating: 8, count: 28)
        executor.workerPid = 1234
        batch.executorTable = [executor]
        var error = Ray_Rpc_TaskEventError()
        error.errorType = "TASK_EXECUTION_EXCEPTION"
        error.errorMessage = "boom"
        batch.errorTable = [error]
        return batch
    }

    @Test func aBatchInColumnsMergesWithMessagesAndItself() throws {
        let store = TaskEventStore()
        // Task 1: the executor's RUNNING (a name only) arrives first, then the owner's FINISHED.
        var running = Self.event(1, "RUNNING", at: 20, name: "square")
        running.workerPid = 1234
        try store.add([running], dropped: 0)
        try store.add([], batch: Self.batch([1, 2], states: [.taskEventFinished, .taskEventFailed], ended: [30, 40],
                                            profiles: [0, 0], executors: [0, 0], errors: [-1, 0]), dropped: 3)
        let reply = store.list(limit: 0, job: Data())
        #expect(reply.tasks.count == 2 && reply.droppedEvents == 3)
        let (first, second) = (reply.tasks[0], reply.tasks[1])
        #expect(first.task.taskID == Data([1] + [UInt8](repeating: 0, count: 23)))
        #expect(first.task.state == "FINISHED" && first.task.name == "square" && first.task.funcOrClassName == "square")
        #expect(first.task.type == "NORMAL_TASK" && first.task.requiredResources == ["CPU": 1])
        #expect(first.task.workerPid == 1234 && first.task.workerID == Data(repeating: 9, count: 28))
        #expect(first.task.jobID == Data([7, 0, 0, 0]))
        #expect(first.startTimeNs == 20 && first.endTimeNs == 30)
        #expect(second.task.state == "FAILED" && second.task.errorType == "TASK_EXECUTION_EXCEPTION" && second.task.errorMessage == "boom")
        #expect(first.task.errorType.isEmpty)
        // A late RUNNING in a batch (no profile) keeps what the record has.
        try store.add([], batch: Self.batch([2], states: [.taskEventRunning]), dropped: 0)
        let after = store.list(limit: 0, job: Data()).tasks[1]
        #expect(after.task.state == "FAILED" && after.task.name == "square" && after.task.workerPid == 1234)
        let counts = Dictionary(uniqueKeysWithValues: store.counts().counts.map { ("\($0.state) \($0.name)", $0.count) })
        #expect(counts == ["FINISHED square": 1, "FAILED square": 1])
    }

    /// The bad batches, built inside the test: held in a `static let` as `@Test(arguments:)`, their
    /// Data buffers were reported as direct leaks by LeakSanitizer at exit (`make check-memory`).
    static func badBatch(_ which: Int) -> (message: String, batch: Ray_Rpc_TaskEventBatch) {
        switch which {
        case 0:
            var shortIDs = batch([1], states: [.taskEventFinished])
            shortIDs.taskIds = Data(repeating: 1, count: 23)
            return ("bytes of task IDs", shortIDs)
        case 1: return ("has 1 entries for 2 events", batch([1, 2], states: [.taskEventFinished, .taskEventFinished], ended: [5]))
        case 2:
            var unknownState = batch([1], states: [.taskEventFinished])
            unknownState.states = [9]
            return ("unknown state 9", unknownState)
        case 3: return ("profiles has index 1", batch([1], states: [.taskEventFinished], profiles: [1]))
        case 4: return ("executors has index -2", batch([1], states: [.taskEventFinished], executors: [-2]))
        default: return ("errors has index 3", batch([1], states: [.taskEventFailed], errors: [3]))
        }
    }

    @Test(arguments: 0..<6)
    func aBadBatchIsRefusedWholeWithWhatIsWrong(which: Int) async throws {
        let (message, bad) = Self.badBatch(which)
        let gcs = try GCSServer()
        let channel = try RPCChannel(host: "127.0.0.1", port: gcs.port)
        var request = Ray_Rpc_AddTaskEventDataRequest()
        request.events = [Self.event(5, "FINISHED", at: 1)]  // good, and still not stored
        request.batch = bad
        do {
            _ = try await channel.unary(GCSMethods.addTaskEventData, request, options: CallOptions(timeout: .seconds(5)))
            Issue.record("a bad batch was accepted")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains(message), "\(error.message)")
        }
        var bareID = Ray_Rpc_AddTaskEventDataRequest()
        bareID.events = [Self.event(6, "FINISHED", at: 1)]
        bareID.events[0].taskID = Data([1, 2, 3])
        await #expect(throws: RPCError.self) {
            _ = try await channel.unary(GCSMethods.addTaskEventData, bareID, options: CallOptions(timeout: .seconds(5)))
        }
        let listed = try await channel.unary(GCSMethods.getTaskEvents, Ray_Rpc_GetTaskEventsRequest(), options: CallOptions(timeout: .seconds(5)))
        #expect(listed.tasks.isEmpty, "a refused request stores nothing")
        await gcs.shutdown(grace: .zero)
    }

    @Test func aNegativeLimitIsInvalidArgument() async throws {
        let gcs = try GCSServer()
        let channel = try RPCChannel(host: "127.0.0.1", port: gcs.port)
        var request = Ray_Rpc_GetTaskEventsRequest()
        request.limit = -1
        do {
            _ = try await channel.unary(GCSMethods.getTaskEvents, request, options: CallOptions(timeout: .seconds(5)))
            Issue.record("a negative limit was accepted")
        } catch {
            #expect(error.code == .invalidArgument)
        }
        await gcs.shutdown(grace: .zero)
    }
}
