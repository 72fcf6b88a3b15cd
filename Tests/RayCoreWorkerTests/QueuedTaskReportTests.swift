import RayCommon
@testable import RayCoreWorker
import RayProtos
import Synchronization
import Testing

/// The submitter hands each task that waits past a report interval to the task events once.
@Suite struct QueuedTaskReportTests {
    func task(created: Int64, job: JobID) -> TaskSubmitter.PendingTask {
        TaskSubmitter.PendingTask(spec: Ray_Rpc_TaskSpec(), returns: [], argumentRefs: [], taskID: .random(job: job), created: created)
    }

    @Test func eachWaitingTaskIsReportedOnceOldestFirst() {
        let job = JobID(number: 1)
        let submitter = TaskSubmitter(jobID: job)
        let tasks = [100, 200, 300, 0].map { task(created: Int64($0), job: job) }
        submitter.state.withLock { s in
            var one = TaskSubmitter.ClassState(resources: ["CPU": 1])
            one.queue = Array(tasks[0..<3])
            s.classes["cpu"] = one
            var other = TaskSubmitter.ClassState(resources: ["CPU": 2])
            other.queue = [tasks[3]]  // submitted without task events (no time): never reported
            s.classes["two"] = other
        }
        #expect(submitter.unreportedWaiting(before: 250, limit: 10).map(\.task.taskID) == [tasks[0].taskID, tasks[1].taskID])
        #expect(submitter.unreportedWaiting(before: 250, limit: 10).isEmpty)
        #expect(submitter.unreportedWaiting(before: 1000, limit: 10).map(\.task.taskID) == [tasks[2].taskID])
        // Tasks taken for a worker are not reported, however long they waited.
        let more = (0..<3).map { task(created: Int64(400 + $0), job: job) }
        submitter.state.withLock { s in
            s.withClass("cpu") { c, _ in
                c.queue += more
                _ = c.take(4)
            }
        }
        #expect(submitter.unreportedWaiting(before: 1000, limit: 1).map(\.task.taskID) == [more[1].taskID])
        #expect(submitter.unreportedWaiting(before: 1000, limit: 5).map(\.task.taskID) == [more[2].taskID])
        // A task waiting for its arguments: once, as such.
        let waiting = task(created: 500, job: job)
        submitter.state.withLock { $0.awaitingArguments[waiting.taskID] = (waiting, false) }
        let reported = submitter.unreportedWaiting(before: 1000, limit: 5)
        #expect(reported.count == 1 && reported.first?.task.taskID == waiting.taskID && reported.first?.forArguments == true)
        #expect(submitter.unreportedWaiting(before: 1000, limit: 5).isEmpty)
    }
}
