#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayObjectStore
import RayProtos
import RayRPC
import RayServices
import Synchronization

extension Raylet {
    /// The NodeManagerService handlers (Protos/ray/node_manager.proto).
    static func registerNodeManager(
        on router: inout RPCRouter, nodeManager: NodeManager, store: ObjectStore, objects: ObjectManager,
        owned: OwnedObjects, nodeID: NodeID, logDirectory: String
    ) {
        router.register(NodeManagerMethods.listLogs) { request, _ in
            var reply = Ray_Rpc_ListLogsReply()
            reply.logFiles = NodeLogs.list(logDirectory, glob: request.glob)
            return reply
        }
        router.registerServerStreaming(NodeManagerMethods.streamLog) { request, writer, _ in
            try await NodeLogs.stream(request, directory: logDirectory, to: writer)
        }
        router.register(NodeManagerMethods.registerClient) { request, _ in
            switch request.workerType {
            case .driver: try await nodeManager.registerDriver(request)
            case .worker: try await nodeManager.registerWorker(request)
            case .UNRECOGNIZED(let value):
                throw RPCError(code: .invalidArgument, message: "unknown worker type \(value)")
            }
            var reply = Ray_Rpc_RegisterClientReply()
            reply.nodeID = Data(nodeID.bytes)
            reply.objectStoreName = store.region.name
            reply.objectStoreCapacity = Int64(store.capacity)
            reply.resourcesTotal = nodeManager.baseTotal.amounts
            return reply
        }
        router.register(NodeManagerMethods.disconnectClient) { request, _ in
            await nodeManager.disconnect(try WorkerID(request.workerID, field: "worker_id"), reason: request.reason)
            return Ray_Rpc_DisconnectClientReply()
        }
        router.register(NodeManagerMethods.requestWorkerLease) { request, context in
            try await nodeManager.requestLease(request, deadline: context.deadline)
        }
        router.register(NodeManagerMethods.cancelWorkerLease) { request, _ in
            var reply = Ray_Rpc_CancelWorkerLeaseReply()
            reply.success = await nodeManager.cancelLease(owner: request.ownerWorkerID, requestID: request.requestID)
            return reply
        }
        router.register(NodeManagerMethods.returnWorker) { request, _ in
            try await nodeManager.returnWorker(try WorkerID(request.workerID, field: "worker_id"), disconnect: request.disconnectWorker)
            return Ray_Rpc_ReturnWorkerReply()
        }
        router.register(NodeManagerMethods.prepareBundleResources) { request, _ in
            try await nodeManager.prepareBundles(request.bundleSpecs)
        }
        router.register(NodeManagerMethods.commitBundleResources) { request, _ in
            try await nodeManager.commitBundles(request.bundleSpecs)
            return Ray_Rpc_CommitBundleResourcesReply()
        }
        router.register(NodeManagerMethods.cancelResourceReserve) { request, _ in
            try await nodeManager.cancelBundles(request.bundleSpecs, reason: request.reason)
            return Ray_Rpc_CancelResourceReserveReply()
        }
        router.register(NodeManagerMethods.drainRaylet) { request, _ in
            await nodeManager.drain(request)
        }
        router.register(NodeManagerMethods.notifyTaskBlocked) { request, _ in
            await nodeManager.setBlocked(try WorkerID(request.workerID, field: "worker_id"), request.blocked)
            return Ray_Rpc_NotifyTaskBlockedReply()
        }
        router.register(NodeManagerMethods.createObject) { request, _ in
            let objectID = try ObjectID(request.objectID, field: "object_id")
            let owner = try WorkerID(request.ownerWorkerID, field: "owner_worker_id")
            guard request.dataSize >= 0 else {
                throw RPCError(code: .invalidArgument, message: "object size \(request.dataSize) is negative")
            }
            do throws(RayError) {
                let buffer = try store.create(objectID, size: Int(request.dataSize))
                owned.add(objectID, owner: owner, node: request.ownerNodeID)
                var reply = Ray_Rpc_CreateObjectReply()
                reply.offset = Int64(UnsafeRawPointer(buffer.baseAddress!) - UnsafeRawPointer(store.region.base))
                return reply
            } catch {
                throw RPCError(code: error.kind == .objectStoreFull ? .resourceExhausted : .alreadyExists,
                               message: error.message)
            }
        }
        router.register(NodeManagerMethods.sealObject) { request, _ in
            do {
                try store.seal(try ObjectID(request.objectID, field: "object_id"))
            } catch let error as RayError {
                throw RPCError(code: .notFound, message: error.message)
            }
            return Ray_Rpc_SealObjectReply()
        }
        router.register(NodeManagerMethods.deleteObjects) { request, _ in
            var ids: [ObjectID] = []
            for raw in request.objectIds { ids.append(try ObjectID(raw, field: "object_ids")) }
            for objectID in ids { store.delete(objectID) }
            owned.forget(ids)
            return Ray_Rpc_DeleteObjectsReply()
        }
        router.register(NodeManagerMethods.fetchObject) { request, _ in
            let objectID = try ObjectID(request.objectID, field: "object_id")
            let owner = try WorkerID(request.ownerWorkerID, field: "owner_worker_id")
            let location = try await objects.fetch(objectID, from: request.source)
            owned.add(objectID, owner: owner, node: request.ownerNodeID)
            var reply = Ray_Rpc_FetchObjectReply()
            reply.offset = Int64(location.offset)
            reply.size = Int64(location.size)
            return reply
        }
        router.register(NodeManagerMethods.getNodeStats) { _, _ in
            var reply = await nodeManager.stats()
            reply.objectStoreUsed = Int64(store.usedBytes)
            reply.numObjects = Int32(store.objectCount)
            reply.objectManagerPeakBytesInFlight = Int64(objects.outbound.peak)
            reply.leaseArgumentsPulled = Int64(objects.argumentsPulled)
            return reply
        }
    }
}

/// The objects each client created in the node's store, so they go when the client does.
final class OwnedObjects: Sendable {
    private let owners = Mutex<[WorkerID: Set<ObjectID>]>([:])
    /// The node of each owner that lives on another node (copies pulled here for it).
    private let ownerNodes = Mutex<[WorkerID: Data]>([:])
    private let localNode: Data

    init(localNode: NodeID) { self.localNode = Data(localNode.bytes) }

    /// `node`: the owner's node, if it is known (an owner on this node needs no record: its
    /// disconnection says it is gone).
    func add(_ id: ObjectID, owner: WorkerID, node: Data = Data()) {
        owners.withLock { _ = $0[owner, default: []].insert(id) }
        if !node.isEmpty, node != localNode { ownerNodes.withLock { $0[owner] = node } }
    }

    /// Removes and returns what owners on `node` (which died, and they with it) had here.
    func removeAll(ofNode node: Data) -> Set<ObjectID> {
        let gone = ownerNodes.withLock { nodes -> [WorkerID] in
            let gone = nodes.filter { $0.value == node }.map(\.key)
            for owner in gone { nodes[owner] = nil }
            return gone
        }
        return gone.reduce(into: Set<ObjectID>()) { $0.formUnion(removeAll(of: $1)) }
    }

    func forget(_ ids: [ObjectID]) {
        owners.withLock { owners in
            for key in owners.keys { owners[key]!.subtract(ids) }
        }
    }

    /// Removes and returns what `owner` created.
    func removeAll(of owner: WorkerID) -> Set<ObjectID> { owners.withLock { $0.removeValue(forKey: owner) } ?? [] }
}
