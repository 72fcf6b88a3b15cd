#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayConcurrency
import RayObjectStore
import RayProtos
import RayRPC
import RayServices
import Synchronization

/// Copies objects between the stores of nodes: it serves the chunks of a sealed local object to the
/// raylets that pull it, and pulls remote objects into the local store for the processes of this
/// node (one pull per object however many ask; the copy is sealed, so visible, only once every byte
/// arrived, and a pull that fails leaves nothing behind).
final class ObjectManager: Sendable {
    let store: ObjectStore
    let nodeID: NodeID
    let chunkSize: Int
    /// Outbound bytes over every stream served (`object_manager_max_bytes_in_flight`).
    let outbound: ByteBudget
    /// Pulls in flight, by object: later askers wait for the same one.
    private let pulls = Mutex<[ObjectID: Task<ObjectStore.Location, any Error>]>([:])
    private let channels = Mutex<[String: RPCChannel]>([:])
    private let pulledForLeases = Mutex(0)
    /// Where each live node's object manager listens (`host:object_manager_port`), from the GCS.
    private let objectManagers = Mutex<[Data: String]>([:])
    private let lookUpNode = Mutex<(@Sendable (Data) async -> Ray_Rpc_GcsNodeInfo?)?>(nil)

    /// Asks the GCS for a node this raylet has not heard of yet (set by the raylet).
    var lookUp: (@Sendable (Data) async -> Ray_Rpc_GcsNodeInfo?)? {
        get { lookUpNode.withLock { $0 } }
        set { lookUpNode.withLock { $0 = newValue } }
    }

    /// A node joined or left: where its object manager listens.
    func learn(_ info: Ray_Rpc_GcsNodeInfo) {
        objectManagers.withLock { managers in
            if info.state == .alive, info.objectManagerPort > 0 {
                managers[info.nodeID] = "\(info.nodeManagerAddress):\(info.objectManagerPort)"
            } else {
                managers[info.nodeID] = nil
            }
        }
    }

    /// Where to pull from: the source node's object manager; for a node the GCS does not know (or
    /// one without an object-manager port), the location's raylet address.
    func objectManagerAddress(of source: Ray_Rpc_ObjectLocation) async -> String {
        if let known = objectManagers.withLock({ $0[source.nodeID] }) { return known }
        if !source.nodeID.isEmpty, let info = await lookUp?(source.nodeID) {
            learn(info)
            if let known = objectManagers.withLock({ $0[source.nodeID] }) { return known }
        }
        return source.rayletAddress
    }

    init(store: ObjectStore, nodeID: NodeID, chunkSize: Int = RayConfig()[RayConfig.objectManagerDefaultChunkSize],
         maxBytesInFlight: Int = RayConfig()[RayConfig.objectManagerMaxBytesInFlight]) {
        self.store = store
        self.nodeID = nodeID
        self.chunkSize = max(64 * 1024, chunkSize)
        self.outbound = ByteBudget(limit: maxBytesInFlight)
    }

    /// What one stream may have outbound at once: the stream's window and the chunk being written
    /// (or the whole object, if smaller).
    static func reservation(objectSize: Int, chunk: Int) -> Int {
        min(objectSize, RPCServer.Configuration().streamWindowBytes + chunk) + chunkHeader
    }

    // MARK: serving

    /// A chunk on the wire: a header of two little-endian Int64s (where it starts in the object, the
    /// object's size), then its bytes. Raw, not a protobuf `bytes` field: that would copy each chunk
    /// once more on each side.
    static let chunkHeader = 16

    /// Streams the object's bytes in chunks (the object stays pinned meanwhile, so a delete waits).
    func serve(_ request: Ray_Rpc_PullObjectRequest, to writer: RPCRawWriter) async throws {
        let id = try ObjectID(request.objectID, field: "object_id")
        guard let location = store.get(id) else {
            throw RPCError(code: .notFound, message: "object \(id) is not in the store of node \(nodeID.hex)")
        }
        defer { store.release(id) }
        let chunk = request.chunkSize > 0 ? Int(min(request.chunkSize, 64 * 1024 * 1024)) : chunkSize
        let bytes = store.bytes(at: location)
        // Waits while other streams hold the budget (the puller's deadline bounds the wait: its
        // cancellation ends this one).
        let reserved = Self.reservation(objectSize: bytes.count, chunk: chunk)
        try await outbound.acquire(reserved)
        defer { outbound.release(reserved) }
        var offset = 0
        repeat {
            let end = min(bytes.count, offset + chunk)
            let message = [UInt8](unsafeUninitializedCapacity: Self.chunkHeader + end - offset) { buffer, count in
                let raw = UnsafeMutableRawBufferPointer(buffer)
                raw.storeBytes(of: Int64(offset).littleEndian, toByteOffset: 0, as: Int64.self)
                raw.storeBytes(of: Int64(bytes.count).littleEndian, toByteOffset: 8, as: Int64.self)
                UnsafeMutableRawBufferPointer(rebasing: raw[Self.chunkHeader...]).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
                count = buffer.count
            }
            try await writer.write(message)
            offset = end
        } while offset < bytes.count
    }

    // MARK: pulling

    /// The object in this node's store: at once if it is here, else pulled from `source`'s raylet.
    /// Throws `ObjectLostError` if the copy there is gone or the node cannot be reached.
    func fetch(_ id: ObjectID, from source: Ray_Rpc_ObjectLocation) async throws -> ObjectStore.Location {
        if let here = store.get(id) {
            store.release(id)
            return here
        }
        let task = pulls.withLock { pulls -> Task<ObjectStore.Location, any Error> in
            if let running = pulls[id] { return running }
            let task = Task(executorPreference: ThreadExecutor.raylet) { try await self.pull(id, from: source) }
            pulls[id] = task
            return task
        }
        defer { _ = pulls.withLock { $0.removeValue(forKey: id) } }
        return try await task.value
    }

    /// Arguments pulled for leases before they were granted (GetNodeStats).
    var argumentsPulled: Int { pulledForLeases.withLock { $0 } }

    /// Pulls the arguments among `args` that are on other nodes, at most until `deadline` (less a
    /// margin, so the lease can still be answered); `pulled` hears each copy made (its owner must
    /// learn of it). One that cannot be pulled is left to the worker, which reports the error.
    func pullArguments(_ args: [Ray_Rpc_TaskArg], deadline: ContinuousClock.Instant?,
                       pulled: @escaping @Sendable (Ray_Rpc_TaskArg, ObjectStore.Location) -> Void) async {
        let remote = args.filter { arg in
            guard case .location(let location) = arg.value, !location.nodeID.isEmpty, location.nodeID != Data(nodeID.bytes),
                  let id = try? ObjectID(bytes: arg.objectID) else { return false }
            guard store.get(id) == nil else {
                store.release(id)
                return false
            }
            return true
        }
        guard !remote.isEmpty else { return }
        let limit = deadline.map { ($0 - .now) - .seconds(2) } ?? .seconds(60)
        guard limit > .zero else { return }
        // The pulls, or the limit, whichever comes first: a pull still running then goes on (later
        // askers join it), the lease does not wait for it.
        let done = ResumeOnce()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            done.arm(continuation)
            Task(executorPreference: ThreadExecutor.raylet) {
                await withTaskGroup(of: Void.self) { pulls in
                    for arg in remote {
                        pulls.addTask {
                            guard case .location(let location) = arg.value, let id = try? ObjectID(bytes: arg.objectID),
                                  let here = try? await self.fetch(id, from: location) else { return }
                            self.pulledForLeases.withLock { $0 += 1 }
                            pulled(arg, here)
                        }
                    }
                }
                done.resume()
            }
            done.setTimer(Task(executorPreference: ThreadExecutor.raylet) {
                try? await ThreadExecutor.raylet.sleep(for: limit)
                done.resume()
            })
        }
    }

    private func pull(_ id: ObjectID, from source: Ray_Rpc_ObjectLocation) async throws -> ObjectStore.Location {
        let size = Int(source.size)
        guard size >= 0, !source.rayletAddress.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "object \(id): a source needs a raylet address and a size")
        }
        let sourceNode = (try? NodeID(bytes: source.nodeID))?.hex ?? "?"
        let sourceAddress = await objectManagerAddress(of: source)
        let channel = try channel(sourceAddress)
        let buffer: UnsafeMutableRawBufferPointer
        do {
            buffer = try store.create(id, size: size)
        } catch {
            // Made meanwhile by another path (a put, an earlier pull): use that one once sealed.
            if error.kind == .objectExists, let here = store.get(id) {
                store.release(id)
                return here
            }
            throw RPCError(code: error.kind == .objectStoreFull ? .resourceExhausted : .internalError, message: error.message)
        }
        var request = Ray_Rpc_PullObjectRequest()
        request.objectID = Data(id.bytes)
        request.chunkSize = Int64(chunkSize)
        do {
            let received = try await channel.rawServerStreaming(
                path: NodeManagerMethods.pullObject.path, request, options: CallOptions(timeout: .seconds(600))
            ) { chunks -> Int in
                var received = 0
                for try await message in chunks {
                    try message.withUnsafeBytes { raw in
                        guard raw.count >= Self.chunkHeader else {
                            throw RPCError(code: .dataLoss, message: "object \(id) from node \(sourceNode): a chunk of \(raw.count) bytes has no header")
                        }
                        let start = Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: Int64.self)))
                        let objectSize = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: Int64.self))
                        let data = UnsafeRawBufferPointer(rebasing: raw[Self.chunkHeader...])
                        guard objectSize == Int64(size), start == received, start + data.count <= size else {
                            throw RPCError(code: .dataLoss, message: "object \(id) from node \(sourceNode): a chunk at \(start) of \(data.count) bytes (object \(objectSize)) does not fit the \(size) bytes expected after \(received)")
                        }
                        UnsafeMutableRawBufferPointer(rebasing: buffer[start..<start + data.count]).copyMemory(from: data)
                        received += data.count
                    }
                }
                return received
            }
            guard received == size else {
                throw RPCError(code: .dataLoss, message: "object \(id) from node \(sourceNode): \(received) of \(size) bytes arrived")
            }
            try store.seal(id)
        } catch {
            store.delete(id)  // never sealed: nobody saw it
            if let error = error as? RPCError, error.code == .notFound || error.code == .unavailable || error.code == .deadlineExceeded {
                throw RPCError(code: .notFound, message: "ObjectLostError: all copies of object \(id) are lost: node \(sourceNode) (\(sourceAddress)) \(error.code == .notFound ? "no longer has it" : "cannot be reached"): \(error.message)")
            }
            throw error
        }
        guard let location = store.get(id) else {
            throw RPCError(code: .notFound, message: "object \(id) was deleted as soon as it arrived")
        }
        store.release(id)
        return location
    }

    /// Tells an object's owner of a copy made here (it frees the copy with the object).
    func tellOwner(_ owner: Ray_Rpc_Address, _ request: Ray_Rpc_AddObjectLocationRequest) {
        guard let channel = try? channel("\(owner.ipAddress):\(owner.port)") else { return }
        Task(executorPreference: ThreadExecutor.raylet) {
            _ = try? await channel.unary(CoreWorkerMethods.addObjectLocation, request, options: CallOptions(timeout: .seconds(10)))
        }
    }

    /// A channel to another raylet (or a core worker) at `host:port`, kept for later calls.
    private func channel(_ address: String) throws(RPCError) -> RPCChannel {
        if let channel = channels.withLock({ $0[address] }) { return channel }
        let channel = try RPCChannel(target: address)
        return channels.withLock { channels in
            if let existing = channels[address] { return existing }
            channels[address] = channel
            return channel
        }
    }
}

/// Resumes a continuation once, whichever of several paths comes first, and then cancels the timer
/// that was one of them.
final class ResumeOnce: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Void, Never>?
        var timer: Task<Void, Never>?
        var resumed = false
    }
    private let state = Mutex(State())

    func arm(_ continuation: CheckedContinuation<Void, Never>) { state.withLock { $0.continuation = continuation } }

    /// The task that resumes at the time limit (cancelled at once if something resumed first).
    func setTimer(_ timer: Task<Void, Never>) {
        if state.withLock({ s -> Bool in s.timer = timer; return s.resumed }) { timer.cancel() }
    }

    func resume() {
        let taken = state.withLock { s -> (CheckedContinuation<Void, Never>?, Task<Void, Never>?) in
            guard !s.resumed else { return (nil, nil) }
            s.resumed = true
            defer { s.continuation = nil }
            return (s.continuation, s.timer)
        }
        taken.1?.cancel()
        taken.0?.resume()
    }
}
