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

    @Test func eventsOfAnAttemptMergeAndALateOneNeverMovesItBack() {
        let store = TaskEventStore()
        var running = Self.event(1, "RUNNING", at: 20)
        running.workerPid = 42
        store.add([Self.event(1, "PENDING_NODE_ASSIGNMENT", at: 10, name: "square"), Self.event(1, "FINISHED", at: 30)], dropped: 0)
        store.add([running], dropped: 2)  // the executor's event arrives after the owner's end
        let reply = store.list(limit: 0, job: Data())
        #expect(reply.tasks.count == 1 && reply.total == 1 && reply.droppedEvents == 2)
        let record = reply.tasks[0]
        #expect(record.task.state == "FINISHED")
        #expect(record.task.name == "square" && record.task.workerPid == 42)
        #expect(record.creationTimeNs == 10 && record.startTimeNs == 20 && record.endTimeNs == 30)
    }

    @Test func failedStandsOverFinished() {
        let store = TaskEventStore()
        store.add([Self.event(1, "FAILED", at: 5), Self.event(1, "FINISHED", at: 6)], dropped: 0)
        #expect(store.list(limit: 0, job: Data()).tasks[0].task.state == "FAILED")
    }

    @Test func theOldestAreEvictedPastTheBoundAndCounted() {
        let store = TaskEventStore(maxTasks: 3)
        store.add((1...5).map { Self.event($0, "FINISHED", at: Int64($0)) }, dropped: 0)
        let reply = store.list(limit: 0, job: Data())
        #expect(reply.tasks.map { $0.task.taskID.first } == [3, 4, 5])
        #expect(reply.evictedTasks == 2)
        #expect(store.list(limit: 2, job: Data()).tasks.map { $0.task.taskID.first } == [4, 5])  // the newest
    }

    /// The ray_tasks counts: an attempt counts once, in its current state and under its name (even
    /// when the name arrives with a later event); evicted, an ended one stays counted and a running
    /// one does not.
    @Test func countsFollowEachAttemptsStateAndSurviveEvictionOnlyWhenEnded() {
        let store = TaskEventStore(maxTasks: 2)
        func counts() -> [String: Int64] {
            Dictionary(uniqueKeysWithValues: store.counts().counts.map { ("\($0.state) \($0.name)", $0.count) })
        }
        store.add([Self.event(1, "RUNNING", at: 1), Self.event(2, "RUNNING", at: 2, name: "square")], dropped: 0)
        #expect(counts() == ["RUNNING ": 1, "RUNNING square": 1])
        store.add([Self.event(1, "FINISHED", at: 3, name: "square")], dropped: 0)
        #expect(counts() == ["FINISHED square": 1, "RUNNING square": 1])
        store.add([Self.event(2, "FINISHED", at: 4)], dropped: 0)  // a late RUNNING never moves it back
        store.add([Self.event(2, "RUNNING", at: 5)], dropped: 0)
        #expect(counts() == ["FINISHED square": 2])
        // Attempts 3 and 4 evict 1 and 2 (ended: still counted), then 5 evicts 3 (running: gone).
        store.add([Self.event(3, "RUNNING", at: 6, name: "cube"), Self.event(4, "FAILED", at: 7, name: "cube")], dropped: 0)
        store.add([Self.event(5, "FINISHED", at: 8, name: "cube")], dropped: 0)
        #expect(counts() == ["FINISHED square": 2, "FAILED cube": 1, "FINISHED cube": 1])
        #expect(store.counts().total == 2 && store.counts().evictedTasks == 3)
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
