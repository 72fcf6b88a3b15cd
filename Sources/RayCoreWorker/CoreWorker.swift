import Foundation
#if canImport(Glibc)
import Glibc
#endif
import RayCommon
import RayConcurrency
import RayObjectStore
import RayProtos
import RayRPC
import RayServices
import Synchronization

extension ThreadExecutor {
    /// The core worker's thread: its service handlers (but for actor calls and tasks, which start on
    /// the completion-queue thread), lease requests, result and borrower bookkeeping and timers run
    /// here, never waiting for a thread of Swift's global pool, which the user's tasks and driver code
    /// may keep busy. User code never runs here.
    public static let coreWorker = ThreadExecutor(name: "ray-core-worker")
}

/// The library inside every driver and worker process: it submits tasks (a lease from the raylet,
/// then the tasks pushed straight to the leased worker), owns the objects its puts and tasks create,
/// executes the tasks pushed to it, and serves the core-worker RPCs.
public final class CoreWorker: Sendable {
    public enum Mode: Sendable { case driver, worker }

    public struct Configuration: Sendable {
        public var mode: Mode
        public var jobID: JobID
        public var workerID: WorkerID
        /// The node's raylet, `host:port`.
        public var rayletAddress: String
        public var gcsAddress: String
        /// Drivers: the executable and arguments the raylet re-launches as this job's workers.
        public var executable: String = ""
        public var arguments: [String] = []
        public var workingDirectory: String = ""
        public var environment: [String: String] = [:]
        /// The functions this process can run when tasks are pushed to it.
        public var functions: [String: TaskFunction] = [:]
        /// Makes what hosts actors pushed to this process; set before any task can arrive.
        public var actorHost: (@Sendable (CoreWorker) -> any ActorHost)?
        /// Called once the worker is complete, before it serves any call (a task may arrive the moment
        /// the raylet hears of it, before `connect` returns).
        public var willServe: (@Sendable (CoreWorker) -> Void)?
        /// Where worker output forwarded to a driver goes (default: this process's stdout and stderr).
        public var logSink: (@Sendable (_ pid: Int32, _ isError: Bool, _ lines: [String]) -> Void)?
        /// How long to wait for the raylet to answer the registration.
        public var connectTimeout: Duration = .seconds(10)

        public init(mode: Mode, jobID: JobID, workerID: WorkerID = .random(), rayletAddress: String, gcsAddress: String) {
            self.mode = mode
            self.jobID = jobID
            self.workerID = workerID
            self.rayletAddress = rayletAddress
            self.gcsAddress = gcsAddress
        }
    }

    public let mode: Mode
    public let jobID: JobID
    public let workerID: WorkerID
    public let nodeID: NodeID
    /// Where this process's core-worker service listens.
    public let address: Ray_Rpc_Address
    /// The node's resources, as its raylet reported them.
    public let nodeResources: [String: Double]
    let raylet: RPCChannel
    /// The node's raylet, `host:port` (locations of this node's objects name it).
    let rayletAddress: String
    /// Copies of owned objects on other nodes, freed with the object.
    let copies: CopyTable
    let server: RPCServer
    let store: MemoryStore
    let region: SharedMemoryRegion
    let functions: [String: TaskFunction]
    let submitter: TaskSubmitter
    let executor: TaskExecutor
    let actorSubmitter = ActorSubmitter()
    /// Calls in flight to other nodes (pushes, lease requests), cancelled if their node dies.
    let callsToNodes = NodeCallRegistry()
    let actorReceiver = ActorTaskReceiver()
    private let host = Mutex<(any ActorHost)?>(nil)
    /// The placement group this process's actor was created in with capture_child_tasks: what it
    /// starts without a strategy of its own goes there too.
    let actorPlacementGroup = Mutex<Ray_Rpc_PlacementGroupSchedulingStrategy?>(nil)
    /// Set with it, so a submission elsewhere tests a flag, not a lock.
    let hasActorPlacementGroup = Atomic<Bool>(false)
    /// The placement groups this process made or waits for, as the GCS publishes them.
    let placementGroups = PlacementGroupWatcher()
    /// Their registrations and removals, batched to the GCS in order.
    let placementGroupCalls = PlacementGroupCalls()
    private let gcs = Mutex<RPCChannel?>(nil)
    /// Follows node deaths the GCS publishes (``followNodeDeaths(gcsAddress:)``), until shutdown.
    private let nodeWatch = Mutex<Task<Void, Never>?>(nil)
    let gcsAddress: String
    /// Task state transitions for the state API, batched to the GCS.
    let taskEvents: TaskEvents
    let channels: ChannelCache
    /// Objects up to this many bytes travel inline (`RAY_max_direct_call_object_size`, 100 KiB).
    let inlineThreshold = RayConfig()[RayConfig.maxDirectCallObjectSize]
    /// Shared-memory objects to delete, sent to the raylet in batches.
    let pendingDeletes: DeleteBatcher
    /// How the service handlers reach this worker (cleared on shutdown, which breaks the cycle).
    let box: WorkerBox

    /// Starts this process's core-worker service and registers it with the node's raylet.
    public static func connect(_ configuration: Configuration) async throws -> CoreWorker {
        try await CoreWorker(configuration)
    }

    private init(_ configuration: Configuration) async throws {
        mode = configuration.mode
        jobID = configuration.jobID
        workerID = configuration.workerID
        functions = configuration.functions
        gcsAddress = configuration.gcsAddress
        taskEvents = TaskEvents(jobID: configuration.jobID, gcsAddress: configuration.gcsAddress)
        let raylet: RPCChannel
        do {
            raylet = try RPCChannel(target: configuration.rayletAddress)
        } catch {
            throw RayError(.connection, "cannot reach the raylet at \(configuration.rayletAddress)", cause: "\(error)")
        }
        self.raylet = raylet
        rayletAddress = configuration.rayletAddress
        let deletes = DeleteBatcher(raylet: raylet)
        pendingDeletes = deletes
        let copies = CopyTable()
        self.copies = copies
        let channels = ChannelCache()
        self.channels = channels
        let me = configuration.workerID
        store = MemoryStore(
            onFree: { id, value in
                if case .shared = value { deletes.delete(id) }
                if case .remote(let location) = value { copies.add(id, location) }
                copies.free(id)
            },
            onBorrowEnded: { id, owner in
                // This process no longer holds the borrowed reference: its owner may free it.
                var request = Ray_Rpc_RemoveBorrowerRequest()
                request.objectIds = [Data(id.bytes)]
                request.borrowerWorkerID = Data(me.bytes)
                Task(executorPreference: ThreadExecutor.coreWorker) {
                    _ = try? await channels.channel(for: owner).unary(
                        CoreWorkerMethods.removeBorrower, request, options: CallOptions(timeout: .seconds(10)))
                }
            })
        executor = TaskExecutor()
        submitter = TaskSubmitter(jobID: configuration.jobID)
        if taskEvents.enabled {
            let queued = submitter
            taskEvents.setQueuedSource { before, limit in queued.unreportedWaiting(before: before, limit: limit) }
        }

        let logSink = configuration.logSink ?? { pid, isError, lines in
            let text = lines.map { "(pid=\(pid)) \($0)\n" }.joined()
            if isError { FileHandle.standardError.write(Data(text.utf8)) } else {
                FileHandle.standardOutput.write(Data(text.utf8))
            }
        }
        let box = WorkerBox()
        var router = RPCRouter()
        Self.registerService(on: &router, worker: box, logSink: logSink)
        var serverConfiguration = RPCServer.Configuration()
        let localSocket = "swift-ray-\(workerID.hex)"
        serverConfiguration.localSocketName = localSocket
        serverConfiguration.executor = .coreWorker
        // The node's address (its raylet's host): peers on other nodes reach this process there.
        let bindHost = Self.host(of: configuration.rayletAddress)
        server = try Self.bind(host: bindHost, router: router, configuration: serverConfiguration,
                               ports: configuration.mode == .worker ? Self.workerPorts() : nil)

        var request = Ray_Rpc_RegisterClientRequest()
        request.workerType = configuration.mode == .driver ? .driver : .worker
        request.workerID = Data(workerID.bytes)
        request.jobID = Data(jobID.bytes)
        request.pid = getpid()
        var address = Ray_Rpc_Address()
        address.ipAddress = bindHost
        address.port = Int32(server.port)
        address.workerID = Data(workerID.bytes)
        address.localSocket = localSocket
        request.address = address
        request.executable = configuration.executable
        request.arguments = configuration.arguments
        request.workingDir = configuration.workingDirectory
        request.environment = configuration.environment
        let reply: Ray_Rpc_RegisterClientReply
        // A worker the raylet started waits as long as the raylet waits for it (Ray's
        // worker_register_timeout_seconds, 60 s): giving up sooner on a loaded machine would leave
        // the raylet leasing out a worker that already left.
        let registerTimeout = configuration.mode == .worker ? max(configuration.connectTimeout, .seconds(60)) : configuration.connectTimeout
        do {
            reply = try await raylet.unary(
                NodeManagerMethods.registerClient, request,
                options: CallOptions(timeout: registerTimeout, waitForReady: true))
        } catch {
            box.set(nil)
            await server.shutdown(grace: .zero)
            throw RayError(.connection, "the raylet at \(configuration.rayletAddress) did not accept this \(configuration.mode == .driver ? "driver" : "worker")", cause: "\(error)")
        }
        nodeID = (try? NodeID(bytes: reply.nodeID)) ?? .nil
        address.nodeID = reply.nodeID
        channels.localNode = reply.nodeID
        self.address = address
        taskEvents.setIdentity(worker: address.workerID, node: address.nodeID)
        nodeResources = reply.resourcesTotal
        do {
            region = try SharedMemoryRegion(opening: reply.objectStoreName)
        } catch {
            box.set(nil)
            await server.shutdown(grace: .zero)
            throw error
        }
        self.box = box
        if let makeHost = configuration.actorHost { host.withLock { $0 = makeHost(self) } }
        configuration.willServe?(self)
        box.set(self)
        let watch = followNodeDeaths(gcsAddress: configuration.gcsAddress)
        nodeWatch.withLock { $0 = watch }
    }

    /// The host part of `host:port` (127.0.0.1 if there is none).
    static func host(of address: String) -> String {
        guard let colon = address.lastIndex(of: ":"), colon > address.startIndex else { return "127.0.0.1" }
        return String(address[..<colon])
    }

    /// `RAY_MIN_WORKER_PORT`…`RAY_MAX_WORKER_PORT`, set by the raylet from `ray start`'s flags.
    static func workerPorts() -> ClosedRange<Int>? {
        let environment = ProcessInfo.processInfo.environment
        guard let low = environment["RAY_MIN_WORKER_PORT"].flatMap(Int.init),
              let high = environment["RAY_MAX_WORKER_PORT"].flatMap(Int.init), low > 0, low <= high else { return nil }
        return low...high
    }

    /// Binds the core-worker service on `host`: any free port, or one of `ports` (tried from a random
    /// place in the range, so the node's workers rarely collide).
    static func bind(host: String, router: RPCRouter, configuration: RPCServer.Configuration,
                     ports: ClosedRange<Int>?) throws -> RPCServer {
        guard let ports else { return try RPCServer(host: host, port: 0, router: router, configuration: configuration) }
        let start = Int.random(in: ports)
        var lastError: (any Error)?
        for step in 0..<min(ports.count, 64) {
            let port = ports.lowerBound + (start - ports.lowerBound + step) % ports.count
            do {
                return try RPCServer(host: host, port: port, router: router, configuration: configuration)
            } catch {
                lastError = error
            }
        }
        throw RayError(.connection, "no free port for a worker in \(ports.lowerBound)–\(ports.upperBound) on \(host)", cause: "\(lastError.map { "\($0)" } ?? "")")
    }

    /// Leaves the raylet (a driver's workers stop with it) and stops serving.
    public func shutdown() async {
        nodeWatch.withLock { $0?.cancel() }
        await placementGroups.drain(limit: .seconds(5))
        placementGroups.stop()
        submitter.shutdown()
        await pendingDeletes.flush()
        await taskEvents.drain()
        var request = Ray_Rpc_DisconnectClientRequest()
        request.workerID = Data(workerID.bytes)
        request.reason = "the \(mode == .driver ? "driver" : "worker") shut down"
        _ = try? await raylet.unary(NodeManagerMethods.disconnectClient, request, options: CallOptions(timeout: .seconds(2)))
        await server.shutdown(grace: .milliseconds(200))
        box.set(nil)
        host.withLock { $0 = nil }  // the actor system holds this worker: break the cycle
    }

    // MARK: actors

    /// What runs actors pushed to this process (`Configuration.actorHost`).
    public var actorHost: (any ActorHost)? { host.withLock { $0 } }

    /// A channel to the cluster's GCS.
    public func gcsChannel() throws(RPCError) -> RPCChannel {
        if let channel = gcs.withLock({ $0 }) { return channel }
        let channel = try RPCChannel(target: gcsAddress)
        return gcs.withLock { existing in
            if let existing { return existing }
            existing = channel
            return channel
        }
    }

    // MARK: references

    /// One more `ObjectRef` to `id` in this process (`owner`: who owns it, if another process).
    public func addLocalReference(_ id: ObjectID, owner: Ray_Rpc_Address? = nil) {
        store.addLocalReference(id, owner: owner.flatMap { $0.workerID == address.workerID ? nil : $0 })
    }

    /// One `ObjectRef` to `id` fewer; an owned object nobody references any more is freed.
    public func removeLocalReference(_ id: ObjectID) { store.removeLocalReference(id) }

    /// How many objects this process holds (owned or borrowed).
    public var objectCount: Int { store.count }

    // MARK: put

    /// Stores a value this process will own and returns its ID (with one local reference). Values up to
    /// `max_direct_call_object_size` stay in this process's memory; larger ones go to the node's store.
    /// (Inlinable, so the caller's module specializes the encoding for `T`.)
    @inlinable
    public func put<T: Encodable>(_ value: T) async throws -> ObjectID {
        let encoded: EncodedResult
        do {
            encoded = try EncodedResult(value)
        } catch {
            throw RayError(.serialization, "\(T.self) does not encode", cause: "\(error)")
        }
        return try await put(encoded: encoded)
    }

    /// Stores an encoded value this process will own and returns its ID (see ``put(_:)``).
    public func put(encoded: EncodedResult) async throws -> ObjectID {
        let id = ObjectID(task: submitter.putTaskID, index: submitter.nextPutIndex())
        let threshold = inlineThreshold
        if encoded.size > threshold {
            let location = try await createShared(id, size: encoded.size, owner: workerID) { encoded.write(to: $0) }
            store.addOwned(id, value: location)
        } else {
            store.addOwned(id, value: .inline(encoded.bytes))
        }
        return id
    }

    /// Creates an object of `size` bytes in the node's store, lets `write` fill it, and seals it.
    func createShared(_ id: ObjectID, size: Int, owner: WorkerID, ownerNode: Data = Data(),
                      write: (UnsafeMutableRawPointer) -> Void) async throws -> ObjectValue
    {
        var create = Ray_Rpc_CreateObjectRequest()
        create.objectID = Data(id.bytes)
        create.dataSize = Int64(size)
        create.ownerWorkerID = Data(owner.bytes)
        if ownerNode != Data(nodeID.bytes) { create.ownerNodeID = ownerNode }
        let offset: Int
        do {
            offset = Int(try await raylet.unary(NodeManagerMethods.createObject, create).offset)
        } catch {
            if error.code == .resourceExhausted { throw RayError(.objectStoreFull, error.message) }
            throw RayError(.connection, "the raylet did not create object \(id)", cause: "\(error)")
        }
        guard offset >= 0, offset + size <= region.size else {
            throw RayError(.system, "the raylet placed object \(id) outside the store (\(offset)+\(size) of \(region.size))")
        }
        write(region.base + offset)
        var seal = Ray_Rpc_SealObjectRequest()
        seal.objectID = Data(id.bytes)
        do {
            _ = try await raylet.unary(NodeManagerMethods.sealObject, seal)
        } catch {
            throw RayError(.connection, "the raylet did not seal object \(id)", cause: "\(error)")
        }
        return .shared(offset: offset, size: size)
    }

    // MARK: get and wait

    /// The values of `ids` in order, waiting for them up to `timeout` (nil: no limit but the
    /// caller's cancellation). A task's error is thrown as its `TaskFailure`; a timeout as
    /// `GetTimeoutError`. Shared-memory values are read in place: the caller must keep a reference.
    public func get(_ ids: [ObjectID], timeout: Duration? = nil) async throws -> [ResolvedObject] {
        var values = ids.map { store.value($0) }
        if values.contains(where: { $0 == nil }) {
            let missing = ids.enumerated().filter { values[$0.offset] == nil }.map(\.element)
            fetchBorrowed(missing)
            let blocked = executor.isExecuting
            if blocked { await notifyBlocked(true) }
            let ready = await store.wait(missing, count: missing.count, timeout: timeout)
            if blocked { await notifyBlocked(false) }
            try Task.checkCancellation()
            if ready.count < Set(missing).count {
                throw RayError(.getTimeout, "get timed out after \(timeout.map { "\($0)" } ?? "no limit"): \(Set(missing).count - ready.count) of \(ids.count) objects not ready")
            }
            values = ids.map { store.value($0) }
        }
        // Objects on another node are pulled into this node's store first (Ray pulls on get too).
        for index in ids.indices {
            if case .remote(let location) = values[index] { values[index] = try await pullHere(ids[index], from: location) }
        }
        return try ids.indices.map { index throws -> ResolvedObject in
            switch values[index] {
            case .inline(let bytes): return .inline(bytes)
            case .shared(let offset, let size):
                return .shared(SharedBytes(UnsafeRawBufferPointer(start: region.base + offset, count: size)))
            case .remote: throw RayError(.objectLost, "object \(ids[index]) was not pulled to this node")
            case .error(let failure): throw failure.kind == .objectLost ? RayError(.objectLost, failure.message) : failure
            case nil: throw RayError(.objectLost, "object \(ids[index]) was freed: no reference to it was left")
            }
        }
    }

    /// Which of `ids` are ready once `numReturns` of them are (or `timeout` passed), in the order given.
    public func wait(_ ids: [ObjectID], numReturns: Int, timeout: Duration?) async -> (ready: [ObjectID], notReady: [ObjectID]) {
        fetchBorrowed(ids.filter { store.value($0) == nil })
        let ready = await store.wait(ids, count: numReturns, timeout: timeout)
        var readyList: [ObjectID] = []
        var rest: [ObjectID] = []
        for id in ids {
            if ready.contains(id), readyList.count < numReturns { readyList.append(id) } else { rest.append(id) }
        }
        return (readyList, rest)
    }

    /// Asks the owners of borrowed objects among `ids` for their values (in the background; `set`
    /// wakes the waiters).
    func fetchBorrowed(_ ids: [ObjectID]) {
        for id in ids {
            guard let owner = store.owner(of: id) else { continue }
            Task(executorPreference: ThreadExecutor.coreWorker) { [self] in
                var request = Ray_Rpc_GetObjectStatusRequest()
                request.objectID = Data(id.bytes)
                do {
                    let channel = try channels.channel(for: owner)
                    let reply = try await channel.unary(
                        CoreWorkerMethods.getObjectStatus, request, options: CallOptions(timeout: .seconds(3600)))
                    if reply.status == .outOfScope {
                        store.set(id, .error(TaskFailure(kind: .objectLost, type: "", message: "object \(id) is out of scope at its owner", function: "")))
                    } else {
                        store.set(id, ObjectValue(reply.object, localNode: Data(nodeID.bytes)))
                    }
                } catch {
                    store.set(id, .error(TaskFailure(kind: .objectLost, type: "", message: "the owner of object \(id) is unreachable: \(error)", function: "")))
                }
            }
        }
    }

    /// What the node's raylet reports: resources, pending demand, workers, object store use.
    public func nodeStats() async throws -> Ray_Rpc_GetNodeStatsReply {
        do {
            return try await raylet.unary(NodeManagerMethods.getNodeStats, Ray_Rpc_GetNodeStatsRequest(), options: CallOptions(timeout: .seconds(10)))
        } catch {
            throw RayError(.connection, "the raylet did not answer", cause: "\(error)")
        }
    }

    func notifyBlocked(_ blocked: Bool) async {
        var request = Ray_Rpc_NotifyTaskBlockedRequest()
        request.workerID = Data(workerID.bytes)
        request.blocked = blocked
        _ = try? await raylet.unary(NodeManagerMethods.notifyTaskBlocked, request, options: CallOptions(timeout: .seconds(5)))
    }
}

/// An object's bytes as `get` found them.
public enum ResolvedObject: Sendable {
    case inline([UInt8])
    case shared(SharedBytes)

    /// Calls `body` with the encoded bytes.
    @inlinable
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch self {
        case .inline(let bytes): return try bytes.withUnsafeBytes(body)
        case .shared(let shared): return try body(shared.buffer)
        }
    }
}

/// Bytes in the node's shared-memory store, valid while a reference to their object is held.
public struct SharedBytes: @unchecked Sendable {
    public let buffer: UnsafeRawBufferPointer
    init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }
}

/// Lets the service handlers reach the worker they were registered for: calls that come while it
/// finishes starting (the raylet may lease it the moment it registers) wait for it.
final class WorkerBox: Sendable {
    private let state = Mutex<(worker: CoreWorker?, waiters: [CheckedContinuation<CoreWorker?, Never>], closed: Bool)>((nil, [], false))

    func set(_ worker: CoreWorker?) {
        let waiters = state.withLock { s -> [CheckedContinuation<CoreWorker?, Never>] in
            s.worker = worker
            if worker == nil { s.closed = true }
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume(returning: worker) }
    }

    /// The worker, once it started (nil if it never will).
    var worker: CoreWorker? {
        get async {
            // The common case, without suspending: the worker is up.
            if let worker = state.withLock({ $0.worker }) { return worker }
            return await withCheckedContinuation { continuation in
                let now = state.withLock { s -> CoreWorker?? in
                    if let worker = s.worker { return .some(worker) }
                    if s.closed { return .some(nil) }
                    s.waiters.append(continuation)
                    return .none
                }
                if let now { continuation.resume(returning: now) }
            }
        }
    }
}

/// One channel per peer address, reused by every call to it. Peers on this node are reached over
/// their abstract Unix socket when they have one.
final class ChannelCache: Sendable {
    private let channels = Mutex<[String: RPCChannel]>([:])
    private let node = Mutex<Data>(Data())

    /// This process's node (set once the raylet answered).
    var localNode: Data {
        get { node.withLock { $0 } }
        set { node.withLock { $0 = newValue } }
    }

    private func key(_ address: Ray_Rpc_Address) -> String {
        if !address.localSocket.isEmpty, !address.nodeID.isEmpty, address.nodeID == localNode {
            return "unix-abstract:" + address.localSocket
        }
        return "\(address.ipAddress):\(address.port)"
    }

    func channel(for address: Ray_Rpc_Address) throws(RPCError) -> RPCChannel {
        let key = key(address)
        if let channel = channels.withLock({ $0[key] }) { return channel }
        let channel = try RPCChannel(target: key)
        return channels.withLock { channels in
            if let existing = channels[key] { return existing }
            channels[key] = channel
            return channel
        }
    }

    func forget(_ address: Ray_Rpc_Address) {
        let key = key(address)
        _ = channels.withLock { $0.removeValue(forKey: key) }
    }
}

/// Collects shared-memory objects to delete and sends them to the raylet a batch at a time.
final class DeleteBatcher: Sendable {
    private let raylet: RPCChannel
    private let state = Mutex<(ids: [ObjectID], scheduled: Bool)>(([], false))

    init(raylet: RPCChannel) { self.raylet = raylet }

    func delete(_ id: ObjectID) {
        let schedule = state.withLock { s -> Bool in
            s.ids.append(id)
            defer { s.scheduled = true }
            return !s.scheduled
        }
        if schedule { Task(executorPreference: ThreadExecutor.coreWorker) { await self.flush() } }
    }

    func flush() async {
        let ids = state.withLock { s -> [ObjectID] in
            defer { s = ([], false) }
            return s.ids
        }
        guard !ids.isEmpty else { return }
        var request = Ray_Rpc_DeleteObjectsRequest()
        request.objectIds = ids.map { Data($0.bytes) }
        _ = try? await raylet.unary(NodeManagerMethods.deleteObjects, request, options: CallOptions(timeout: .seconds(10)))
    }
}
