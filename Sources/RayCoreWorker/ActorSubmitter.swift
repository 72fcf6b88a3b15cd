#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayConcurrency
import RayProtos
import RayRPC
import RayServices
import Synchronization

/// Sends this process's calls to actors straight to each actor's worker, numbered per actor in the
/// order they were submitted (the actor runs them in that order), several batches in flight at once.
/// A call whose object arguments are not ready holds back the calls after it, as in Ray. When a push
/// fails the actor is dead: its calls, queued and later, fail with `ActorDiedError` and the cause the
/// GCS recorded.
final class ActorSubmitter: Sendable {
    struct Entry: Sendable {
        var task: TaskSubmitter.PendingTask
        /// Its object arguments are resolved (or it already failed).
        var ready: Bool
        var failure: TaskFailure?
    }

    struct ActorQueue {
        var address: Ray_Rpc_Address
        /// The channel to the actor's worker, looked up once.
        var channel: RPCChannel?
        var className: String
        var nextSequence: Int64 = 0
        var queue: [Entry] = []
        var head = 0
        var pushes = 0
        /// Pushes allowed in flight: enough for the calls the actor may run at once.
        var maxPushes = ActorSubmitter.minPushesInFlight
        var dead: TaskFailure?
    }

    let state = Mutex<[ActorID: ActorQueue]>([:])
    static let maxBatch = 64
    static let minPushesInFlight = 4
}

extension CoreWorker {
    /// Submits a method call on an actor and returns the ID of its result at once (with one local
    /// reference the caller adopts).
    public func submitActorTask(
        _ actorID: ActorID, address: Ray_Rpc_Address, className: String, maxConcurrency: Int = 1, method: String,
        displayName: String, genericSubstitutions: [String], arguments: [TaskArgument]
    ) -> ObjectID {
        let taskID = TaskID.random(actor: actorID)
        var spec = Ray_Rpc_TaskSpec()
        spec.type = .actorTask
        spec.functionName = displayName
        spec.actorTaskSpec.actorID = Data(actorID.bytes)
        spec.actorTaskSpec.method = method
        spec.actorTaskSpec.genericSubstitutions = genericSubstitutions
        let (task, returns) = prepareTask(spec, taskID: taskID, arguments: arguments, numReturns: 1)
        guard var task else { return returns[0] }
        recordSubmitted(&task)
        var entry = ActorSubmitter.Entry(task: task, ready: task.argumentRefs.isEmpty)
        if !entry.ready, let resolved = try? resolveArguments(task, waiting: false) {
            entry.task = resolved
            entry.ready = true
        }
        let (dead, index) = actorSubmitter.state.withLock { actors -> (TaskFailure?, Int) in
            if actors[actorID] == nil {
                var queue = ActorSubmitter.ActorQueue(address: address, className: className)
                queue.maxPushes = max(ActorSubmitter.minPushesInFlight, maxConcurrency)
                actors[actorID] = queue
            }
            if let dead = actors[actorID]!.dead { return (dead, -1) }
            actors[actorID]!.queue.append(entry)
            return (nil, actors[actorID]!.queue.count - 1)
        }
        if let dead {
            finish(task, with: TaskFailure(kind: .actorDied, type: "", message: dead.message, function: displayName))
            return returns[0]
        }
        if !entry.ready { resolveActorArguments(actorID, task: task, index: index) }
        pumpActor(actorID)
        return returns[0]
    }

    /// Waits for a queued call's object arguments, then lets the queue move past it.
    private func resolveActorArguments(_ actorID: ActorID, task: TaskSubmitter.PendingTask, index: Int) {
        Task(executorPreference: ThreadExecutor.coreWorker) { [self] in
            var resolved = task
            var failure: TaskFailure?
            switch await awaitArguments(task) {
            case .success(let ready): resolved = ready
            case .failure(let error): failure = error
            }
            actorSubmitter.state.withLock { actors in
                guard actors[actorID] != nil, index < actors[actorID]!.queue.count,
                      actors[actorID]!.queue[index].task.taskID == task.taskID else { return }
                actors[actorID]!.queue[index].task = resolved
                actors[actorID]!.queue[index].failure = failure
                actors[actorID]!.queue[index].ready = true
            }
            pumpActor(actorID)
        }
    }

    /// Pushes the ready calls at the head of the actor's queue, numbering them, while fewer than
    /// the actor's limit of pushes are out; continues from each reply's callback.
    private func pumpActor(_ actorID: ActorID) {
        while true {
            let next = actorSubmitter.state.withLock { actors -> (batch: [TaskSubmitter.PendingTask], failed: [(TaskSubmitter.PendingTask, TaskFailure)], address: Ray_Rpc_Address, channel: RPCChannel?)? in
                guard var a = actors[actorID], a.dead == nil, a.pushes < a.maxPushes else { return nil }
                var batch: [TaskSubmitter.PendingTask] = []
                var failed: [(TaskSubmitter.PendingTask, TaskFailure)] = []
                while a.head < a.queue.count, a.queue[a.head].ready, batch.count < ActorSubmitter.maxBatch {
                    let entry = a.queue[a.head]
                    a.head += 1
                    if let failure = entry.failure {
                        failed.append((entry.task, failure))
                        continue
                    }
                    var task = entry.task
                    task.spec.actorTaskSpec.sequenceNumber = a.nextSequence
                    a.nextSequence += 1
                    batch.append(task)
                }
                if a.head == a.queue.count {
                    a.queue.removeAll(keepingCapacity: true)
                    a.head = 0
                }
                if !batch.isEmpty { a.pushes += 1 }
                actors[actorID] = a
                if batch.isEmpty && failed.isEmpty { return nil }
                return (batch, failed, a.address, a.channel)
            }
            guard let (batch, failed, address, channel) = next else { return }
            for (task, failure) in failed { finish(task, with: failure) }
            guard !batch.isEmpty else { continue }
            pushActorBatch(actorID, batch: batch, address: address, channel: channel)
        }
    }

    private func pushActorBatch(_ actorID: ActorID, batch: [TaskSubmitter.PendingTask], address: Ray_Rpc_Address,
                                channel cached: RPCChannel?) {
        let channel: RPCChannel
        if let cached {
            channel = cached
        } else {
            do {
                channel = try channels.channel(for: address)
            } catch {
                actorPushFailed(actorID, batch: batch, address: address, error: error)
                return
            }
            actorSubmitter.state.withLock { $0[actorID]?.channel = channel }
        }
        push(batch, over: channel, to: address.workerID, on: address.nodeID) { error in
            if let error {
                self.actorPushFailed(actorID, batch: batch, address: address, error: error)
            } else {
                self.actorSubmitter.state.withLock { $0[actorID]?.pushes -= 1 }
                self.pumpActor(actorID)
            }
        }
    }

    /// The actor's worker is unreachable: the actor is dead. Every call queued or in this batch fails
    /// with the cause the GCS recorded (waited for briefly: the raylet reports the death).
    private func actorPushFailed(_ actorID: ActorID, batch: [TaskSubmitter.PendingTask], address: Ray_Rpc_Address, error: RPCError) {
        channels.forget(address)
        Task(executorPreference: ThreadExecutor.coreWorker) { [self] in
            let className = actorSubmitter.state.withLock { $0[actorID]?.className } ?? "actor"
            let cause = await actorDeathCause(actorID) ?? "its worker cannot be reached (\(error.message))"
            let message = "the actor \(className) (\(actorID)) died: \(cause)"
            let queued = actorSubmitter.state.withLock { actors -> [TaskSubmitter.PendingTask] in
                guard var a = actors[actorID] else { return [] }
                if a.dead == nil { a.dead = TaskFailure(kind: .actorDied, type: "", message: message, function: "") }
                let rest = a.queue[a.head...].map(\.task)
                a.queue = []
                a.head = 0
                a.pushes -= 1
                actors[actorID] = a
                return rest
            }
            let dead = actorSubmitter.state.withLock { $0[actorID]?.dead?.message } ?? message
            for task in batch + queued {
                finish(task, with: TaskFailure(kind: .actorDied, type: "", message: dead, function: task.spec.functionName))
            }
        }
    }

    /// Why the GCS says the actor died, waiting up to two seconds for it to learn of the death.
    func actorDeathCause(_ actorID: ActorID) async -> String? {
        var request = Ray_Rpc_GetActorInfoRequest()
        request.actorID = Data(actorID.bytes)
        let deadline = ContinuousClock.now + .seconds(2)
        while ContinuousClock.now < deadline {
            guard let gcs = try? gcsChannel(),
                  let reply = try? await gcs.unary(GCSMethods.getActorInfo, request, options: CallOptions(timeout: .seconds(2)))
            else { return nil }
            if reply.actorTableData.state == .dead { return reply.actorTableData.deathCause }
            try? await ThreadExecutor.coreWorker.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Marks an actor dead for this process's callers (after `ray.kill`): queued and later calls fail
    /// at once; calls already pushed fail when the worker goes.
    public func actorKilled(_ actorID: ActorID, className: String, cause: String) {
        let message = "the actor \(className) (\(actorID)) died: \(cause)"
        let queued = actorSubmitter.state.withLock { actors -> [TaskSubmitter.PendingTask] in
            var a = actors[actorID] ?? ActorSubmitter.ActorQueue(address: Ray_Rpc_Address(), className: className)
            if a.dead == nil { a.dead = TaskFailure(kind: .actorDied, type: "", message: message, function: "") }
            let rest = a.queue[a.head...].map(\.task)
            a.queue = []
            a.head = 0
            actors[actorID] = a
            return rest
        }
        for task in queued {
            finish(task, with: TaskFailure(kind: .actorDied, type: "", message: message, function: task.spec.functionName))
        }
    }
}
