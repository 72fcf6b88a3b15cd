#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import RayCommon
import RayProtos
import RayRPC
import RayServices
import Synchronization

/// An argument as the executing worker receives it: encoded bytes, in this process's memory or in
/// the node's shared-memory store (valid while the task runs).
public enum ArgumentValue: @unchecked Sendable {
    case bytes([UInt8])
    case shared(UnsafeRawBufferPointer)

    @inlinable
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch self {
        case .bytes(let bytes): return try bytes.withUnsafeBytes(body)
        case .shared(let buffer): return try body(buffer)
        }
    }
}

/// A result as a task function produced it: encoded bytes, or a value that encodes as one block
/// (written straight into the shared-memory store when it is large).
public enum EncodedResult: @unchecked Sendable {
    case bytes([UInt8])
    case direct(DirectEncoding)

    /// `value` encoded: as one block when its encoding is one (numeric arrays, `Data`; written where
    /// it goes, inline or into shared memory), else as bytes. Inlinable, so the caller's module
    /// specializes the encoding for `T`.
    @inlinable
    public init<T: Encodable>(_ value: T) throws(SerializationError) {
        let encoder = BinaryEncoder()
        if let direct = encoder.directEncoding(value) {
            self = .direct(direct)
        } else {
            self = .bytes(try encoder.encode(value))
        }
    }

    var size: Int {
        switch self {
        case .bytes(let bytes): return bytes.count
        case .direct(let direct): return direct.size
        }
    }

    /// The encoding as one array (a direct encoding copied out).
    var bytes: [UInt8] {
        switch self {
        case .bytes(let bytes): return bytes
        case .direct(let direct):
            return [UInt8](unsafeUninitializedCapacity: direct.size) { buffer, count in
                if direct.size > 0 { direct.write(to: UnsafeMutableRawPointer(buffer.baseAddress!)) }
                count = direct.size
            }
        }
    }

    /// Writes the encoding to `destination`, which holds ``size`` bytes.
    func write(to destination: UnsafeMutableRawPointer) {
        switch self {
        case .bytes(let bytes):
            bytes.withUnsafeBytes { if bytes.count > 0 { destination.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) } }
        case .direct(let direct): direct.write(to: destination)
        }
    }
}

/// A function tasks can call by name: decodes its arguments, runs, encodes one result per return.
public typealias TaskFunction = @Sendable (_ arguments: [ArgumentValue]) async throws -> [EncodedResult]

/// What runs actors in a worker process (the `Ray` module's actor system): it creates an actor from
/// its creation task and runs the method calls pushed to it.
public protocol ActorHost: Sendable {
    /// Runs the initializer of the actor type the spec names, with its encoded creation arguments.
    func createActor(_ spec: Ray_Rpc_ActorCreationTaskSpec, arguments: [ArgumentValue]) async throws
    /// Runs a method of a hosted actor and encodes its result.
    func callActor(_ actorID: ActorID, method: String, genericSubstitutions: [String], arguments: [ArgumentValue])
        async throws -> [EncodedResult]
}

/// Runs the tasks pushed to this process, one at a time in the order they came, and keeps the
/// running one cancellable.
final class TaskExecutor: Sendable {
    private struct Running {
        var taskID: TaskID
        var task: Task<[Ray_Rpc_ReturnObject], Never>
    }
    private let running = Mutex<Running?>(nil)
    private let cancelledBeforeStart = Mutex<Set<TaskID>>([])

    private let executing = Atomic<Int>(0)

    /// True while a task runs here (a get inside it lends its CPU back to the raylet).
    var isExecuting: Bool { executing.load(ordering: .relaxed) > 0 }

    func cancel(_ taskID: TaskID, force: Bool) -> Bool {
        let task = running.withLock { $0?.taskID == taskID ? $0?.task : nil }
        guard let task else {
            cancelledBeforeStart.withLock { _ = $0.insert(taskID) }
            return false
        }
        if force {
            // Ray's force=True: the worker process exits; the raylet starts another.
            exit(1)
        }
        task.cancel()
        return true
    }

    /// Runs a task; its result carries the references it received and still holds (borrowed).
    func run(_ spec: Ray_Rpc_TaskSpec, on worker: CoreWorker) async -> Ray_Rpc_TaskResult {
        var result = Ray_Rpc_TaskResult()
        // When and where it ran travels back to the owner in the result; only a task still running
        // at a report is reported from here.
        var slot: Int?
        if worker.taskEvents.enabled {
            result.startTimeNs = TaskEvents.now()
            slot = worker.taskEvents.startedRunning(spec.taskID, name: spec.functionName, at: result.startTimeNs)
        }
        defer { if let slot { worker.taskEvents.finishedRunning(slot) } }
        result.taskID = spec.taskID
        let references = ReferenceCollector()
        result.returnObjects = await runReturningObjects(spec, on: worker, references: references)
        let decoded = references.collected
        if !decoded.isEmpty {
            result.borrowedRefs = worker.store.reportBorrows(decoded.map(\.0)).map { id, owner in
                var reference = Ray_Rpc_ObjectReference()
                reference.objectID = Data(id.bytes)
                reference.ownerAddress = owner
                return reference
            }
        }
        return result
    }

    private func runReturningObjects(_ spec: Ray_Rpc_TaskSpec, on worker: CoreWorker, references: ReferenceCollector) async
        -> [Ray_Rpc_ReturnObject]
    {
        let taskID = (try? TaskID(bytes: spec.taskID)) ?? .nil
        let function = spec.functionName
        if cancelledBeforeStart.withLock({ $0.remove(taskID) != nil }) {
            return failure(spec, TaskFailure(kind: .taskCancelled, type: "", message: "the task was cancelled before it ran", function: function))
        }
        executing.add(1, ordering: .relaxed)
        defer { executing.subtract(1, ordering: .relaxed) }
        // Immediate: a function that does not suspend runs and returns on this thread, with no hop.
        // (Until it suspends it cannot be cancelled; a cancel that comes then finds it finished.)
        if spec.type != .normalTask {
            // Actor work: ordered and limited by the actor's receiver, not cancellable one by one.
            return await runActorTask(spec, on: worker, references: references)
        }
        let task = Task.immediate { await Self.execute(spec, on: worker, references: references) }
        running.withLock { $0 = Running(taskID: taskID, task: task) }
        let result = await task.value
        running.withLock { $0 = nil }
        return result
    }

    private func runActorTask(_ spec: Ray_Rpc_TaskSpec, on worker: CoreWorker, references: ReferenceCollector) async
        -> [Ray_Rpc_ReturnObject]
    {
        if spec.type == .actorCreationTask {
            worker.actorReceiver.configure(maxConcurrency: Int(spec.actorCreationTaskSpec.maxConcurrency))
            return await Self.execute(spec, on: worker, references: references)
        }
        let caller = spec.callerAddress.workerID
        await worker.actorReceiver.admit(caller: caller, sequence: spec.actorTaskSpec.sequenceNumber)
        defer { worker.actorReceiver.finish() }
        return await Self.execute(spec, on: worker, references: references)
    }

    private func failure(_ spec: Ray_Rpc_TaskSpec, _ failure: TaskFailure) -> [Ray_Rpc_ReturnObject] {
        (0..<max(1, Int(spec.numReturns))).map { _ in ObjectValue.error(failure).returnObject }
    }

    private static func execute(_ spec: Ray_Rpc_TaskSpec, on worker: CoreWorker, references: ReferenceCollector) async
        -> [Ray_Rpc_ReturnObject]
    {
        let name = spec.functionName
        let numReturns = max(1, Int(spec.numReturns))
        func fail(_ failure: TaskFailure) -> [Ray_Rpc_ReturnObject] {
            (0..<numReturns).map { _ in ObjectValue.error(failure).returnObject }
        }
        let function: TaskFunction
        switch spec.type {
        case .actorCreationTask, .actorTask:
            guard let host = worker.actorHost else {
                return fail(TaskFailure(kind: .system, type: "", message: "this process cannot host actors (no actor system)", function: name))
            }
            if spec.type == .actorCreationTask {
                let creation = spec.actorCreationTaskSpec
                if case .placementGroupSchedulingStrategy(let group) = spec.schedulingStrategy.strategy,
                   group.placementGroupCaptureChildTasks {
                    worker.setActorPlacementGroup(group)
                }
                function = { arguments in
                    try await host.createActor(creation, arguments: arguments)
                    return [.bytes([])]
                }
            } else {
                let call = spec.actorTaskSpec
                guard let actorID = try? ActorID(bytes: call.actorID) else {
                    return fail(TaskFailure(kind: .system, type: "", message: "a call without a valid actor ID", function: name))
                }
                function = { arguments in
                    try await host.callActor(actorID, method: call.method, genericSubstitutions: call.genericSubstitutions, arguments: arguments)
                }
            }
        default:
            guard let registered = worker.functions[name] else {
                let known = worker.functions.keys.sorted().prefix(20).joined(separator: ", ")
                return fail(TaskFailure(
                    kind: .system, type: "", message: "no remote function named '\(name)' is registered in this executable (registered: \(known))",
                    function: name))
            }
            function = registered
        }
        var arguments: [ArgumentValue] = []
        arguments.reserveCapacity(spec.args.count)
        for (index, arg) in spec.args.enumerated() {
            switch arg.value {
            case .inlineData(let data): arguments.append(.bytes([UInt8](data)))
            case .location(var location):
                if !location.nodeID.isEmpty, location.nodeID != Data(worker.nodeID.bytes) {
                    // The object lives on another node: this node's raylet pulls a copy first.
                    do {
                        location = try await worker.pullArgument(arg, from: location)
                    } catch let error as RayError {
                        return fail(TaskFailure(kind: error.kind, type: "", message: "argument \(index) of \(name): \(error.message)", function: name))
                    } catch {
                        return fail(TaskFailure(kind: .objectLost, type: "", message: "argument \(index) of \(name): \(error)", function: name))
                    }
                }
                let offset = Int(location.offset)
                let size = Int(location.size)
                guard offset >= 0, size >= 0, offset + size <= worker.region.size else {
                    return fail(TaskFailure(kind: .objectLost, type: "", message: "argument \(index) lies outside the object store", function: name))
                }
                arguments.append(.shared(UnsafeRawBufferPointer(start: worker.region.base + offset, count: size)))
            case nil:
                return fail(TaskFailure(kind: .system, type: "", message: "argument \(index) has no value", function: name))
            }
        }
        let results: [EncodedResult]
        do {
            let run = { try await ReferenceTracking.$decoding.withValue(references) { try await function(arguments) } }
            // Only a task that captures its group binds it for the tasks it starts (a task-local
            // binding for every task would cost each one).
            if case .placementGroupSchedulingStrategy(let group) = spec.schedulingStrategy.strategy, group.placementGroupCaptureChildTasks {
                results = try await CoreWorker.$capturingPlacementGroup.withValue(group) { try await run() }
            } else {
                results = try await run()
            }
            try Task.checkCancellation()
        } catch let failure as TaskFailure {
            return fail(failure)
        } catch is CancellationError {
            return fail(TaskFailure(kind: .taskCancelled, type: "", message: "the task was cancelled while it ran", function: name))
        } catch let error as RayError where error.kind == .serialization || error.kind == .system {
            return fail(TaskFailure(kind: error.kind, type: "", message: error.message, function: name))
        } catch {
            return fail(TaskFailure(kind: .taskError, type: String(reflecting: type(of: error)), message: "\(error)", function: name))
        }
        guard results.count == numReturns else {
            return fail(TaskFailure(kind: .system, type: "", message: "\(name) returned \(results.count) objects, but num_returns=\(numReturns)", function: name))
        }
        let owner = (try? WorkerID(bytes: spec.callerAddress.workerID)) ?? worker.workerID
        let threshold = worker.inlineThreshold
        let taskID = (try? TaskID(bytes: spec.taskID)) ?? .nil
        var objects: [Ray_Rpc_ReturnObject] = []
        for (index, result) in results.enumerated() {
            let id = ObjectID(task: taskID, index: UInt32(index + 1))
            if result.size <= threshold {
                objects.append(ObjectValue.inline(result.bytes).returnObject)
                continue
            }
            do {
                let value = try await worker.createShared(id, size: result.size, owner: owner, ownerNode: spec.callerAddress.nodeID) {
                    result.write(to: $0)
                }
                objects.append(value.returnObject(node: Data(worker.nodeID.bytes), raylet: worker.rayletAddress))
            } catch let error as RayError {
                return fail(TaskFailure(kind: error.kind, type: "", message: "result \(index + 1) of \(name) (\(result.size) bytes) could not be stored: \(error.message)", function: name))
            } catch {
                return fail(TaskFailure(kind: .system, type: "", message: "\(error)", function: name))
            }
        }
        return objects
    }
}

extension CoreWorker {
    /// The CoreWorkerService handlers (Protos/ray/core_worker.proto).
    static func registerService(
        on router: inout RPCRouter, worker box: WorkerBox,
        logSink: @escaping @Sendable (Int32, Bool, [String]) -> Void
    ) {
        // On the completion queue: a sequential actor's call then runs on the thread that received it,
        // through the hop into the actor to the reply (a thread wake-up saved on every call's path).
        // This is user work: what resumes elsewhere goes on on Swift's pool, never on the core
        // worker's thread, which serves the control RPCs below (a CPU-bound method there would hold
        // them up). Task functions run in tasks of their own (on the pool once they suspend), and a
        // concurrent actor's calls on the pool.
        router.register(CoreWorkerMethods.pushTasks, placement: .completionQueueOrGlobalPool) { request, _ in
            guard let worker = await box.worker else { throw RPCError(code: .unavailable, message: "the worker has shut down") }
            var reply = Ray_Rpc_PushTasksReply()
            reply.results.reserveCapacity(request.tasks.count)
            if worker.taskEvents.enabled { reply.workerPid = worker.taskEvents.pid }
            if request.tasks.count > 1, request.tasks[0].type == .actorTask, !worker.actorReceiver.isSequential {
                // A batch for an actor that runs calls concurrently: each call waits for its turn in
                // the receiver (caller order, concurrency limit). A sequential actor's batch runs in
                // order below.
                reply.results = await withTaskExecutorPreference(globalConcurrentExecutor) {
                    await withTaskGroup(of: (Int, Ray_Rpc_TaskResult).self) { group in
                        for (index, spec) in request.tasks.enumerated() {
                            group.addTask { (index, await worker.executor.run(spec, on: worker)) }
                        }
                        var results = [Ray_Rpc_TaskResult](repeating: Ray_Rpc_TaskResult(), count: request.tasks.count)
                        for await (index, result) in group { results[index] = result }
                        return results
                    }
                }
                return reply
            }
            for spec in request.tasks { reply.results.append(await worker.executor.run(spec, on: worker)) }
            return reply
        }
        router.register(CoreWorkerMethods.addObjectLocation) { request, _ in
            guard let worker = await box.worker else { throw RPCError(code: .unavailable, message: "the worker has shut down") }
            let id = try ObjectID(request.objectID, field: "object_id")
            guard !request.location.rayletAddress.isEmpty else {
                throw RPCError(code: .invalidArgument, message: "a location needs the raylet address of its node")
            }
            // Still in scope: freed with the object. Already freed: free the copy now.
            if worker.store.contains(id) { worker.copies.add(id, request.location) } else { worker.copies.delete([id], at: request.location.rayletAddress) }
            return Ray_Rpc_AddObjectLocationReply()
        }
        router.register(CoreWorkerMethods.getObjectStatus) { request, _ in
            guard let worker = await box.worker else { throw RPCError(code: .unavailable, message: "the worker has shut down") }
            let id = try ObjectID(request.objectID, field: "object_id")
            var reply = Ray_Rpc_GetObjectStatusReply()
            guard worker.store.contains(id) else {
                reply.status = .outOfScope
                return reply
            }
            _ = await worker.store.wait([id], count: 1, timeout: nil)
            guard let value = worker.store.value(id) else {
                reply.status = .outOfScope
                return reply
            }
            reply.status = .created
            reply.object = value.returnObject(node: Data(worker.nodeID.bytes), raylet: worker.rayletAddress)
            reply.object.objectID = request.objectID
            return reply
        }
        router.register(CoreWorkerMethods.cancelTask) { request, _ in
            guard let worker = await box.worker else { throw RPCError(code: .unavailable, message: "the worker has shut down") }
            let id = try TaskID(request.taskID, field: "task_id")
            var reply = Ray_Rpc_CancelTaskReply()
            reply.attemptSucceeded = worker.executor.cancel(id, force: request.forceKill)
            return reply
        }
        router.register(CoreWorkerMethods.addBorrower) { request, _ in
            guard let worker = await box.worker else { throw RPCError(code: .unavailable, message: "the worker has shut down") }
            let (ids, borrower) = try borrowRequest(request.objectIds, request.borrowerWorkerID)
            worker.store.addBorrower(ids, borrower)
            return Ray_Rpc_AddBorrowerReply()
        }
        router.register(CoreWorkerMethods.removeBorrower) { request, _ in
            guard let worker = await box.worker else { throw RPCError(code: .unavailable, message: "the worker has shut down") }
            let (ids, borrower) = try borrowRequest(request.objectIds, request.borrowerWorkerID)
            worker.store.removeBorrower(ids, borrower)
            return Ray_Rpc_RemoveBorrowerReply()
        }
        router.register(CoreWorkerMethods.getCoreWorkerStats) { request, _ in
            guard let worker = await box.worker else { throw RPCError(code: .unavailable, message: "the worker has shut down") }
            guard request.limit >= 0 else { throw RPCError(code: .invalidArgument, message: "limit must not be negative, got \(request.limit)") }
            let (refs, total) = worker.store.references(limit: Int(request.limit))
            var reply = Ray_Rpc_GetCoreWorkerStatsReply()
            reply.objectRefs = refs
            reply.total = Int64(total)
            reply.isDriver = worker.mode == .driver
            reply.pid = getpid()
            reply.ipAddress = worker.address.ipAddress
            return reply
        }
        router.register(CoreWorkerMethods.publishLogs) { request, _ in
            for batch in request.batches { logSink(batch.pid, batch.isError, batch.lines) }
            return Ray_Rpc_PublishLogsReply()
        }
    }
}

private func borrowRequest(_ objectIDs: [Data], _ borrower: Data) throws(RPCError) -> ([ObjectID], WorkerID) {
    var ids: [ObjectID] = []
    for raw in objectIDs { ids.append(try ObjectID(raw, field: "object_ids")) }
    return (ids, try WorkerID(borrower, field: "borrower_worker_id"))
}
