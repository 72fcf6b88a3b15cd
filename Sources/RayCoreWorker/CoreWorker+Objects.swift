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

/// Objects on other nodes: pulled into this node's store when read, and every copy freed when the
/// owner frees the object.
extension CoreWorker {
    /// Pulls `id` (on another node, at `location`) into this node's store and returns it as a local
    /// value, which replaces the remote one. The owner hears of the copy (it frees it too). An owner
    /// whose copy cannot be pulled tries the other copies it knows of before it gives up (their node
    /// may have died before the GCS said so).
    func pullHere(_ id: ObjectID, from location: Ray_Rpc_ObjectLocation) async throws -> ObjectValue {
        let owner = store.owner(of: id) ?? address
        let here: Ray_Rpc_ObjectLocation
        let source: Ray_Rpc_ObjectLocation
        do {
            here = try await fetch(id, from: location, owner: owner)
            source = location
        } catch {
            guard store.owner(of: id) == nil else { throw error }
            var pulled: (Ray_Rpc_ObjectLocation, Ray_Rpc_ObjectLocation)?
            for copy in copies.locations(of: id) where copy.nodeID != location.nodeID {
                if let copied = try? await fetch(id, from: copy, owner: owner) { pulled = (copied, copy); break }
            }
            guard let pulled else { throw error }
            (here, source) = pulled
        }
        let value = ObjectValue.shared(offset: Int(here.offset), size: Int(here.size))
        store.replace(id, value)
        if let owner = store.owner(of: id) {
            tellOwner(owner, id, here)
        } else if source == location {
            copies.add(id, location)  // the copy it came from, freed with ours
        }
        return value
    }

    /// A task argument on another node: pulled here; the owner hears of the copy.
    func pullArgument(_ arg: Ray_Rpc_TaskArg, from location: Ray_Rpc_ObjectLocation) async throws -> Ray_Rpc_ObjectLocation {
        let id = try ObjectID(bytes: arg.objectID)
        let here = try await fetch(id, from: location, owner: arg.hasOwnerAddress ? arg.ownerAddress : address)
        if arg.hasOwnerAddress, arg.ownerAddress.workerID != address.workerID {
            tellOwner(arg.ownerAddress, id, here)
        } else {
            copies.add(id, here)
        }
        return here
    }

    /// This node's raylet pulls the object; the location of the local copy.
    private func fetch(_ id: ObjectID, from location: Ray_Rpc_ObjectLocation, owner: Ray_Rpc_Address) async throws -> Ray_Rpc_ObjectLocation {
        var request = Ray_Rpc_FetchObjectRequest()
        request.objectID = Data(id.bytes)
        request.source = location
        request.ownerWorkerID = owner.workerID
        request.ownerNodeID = owner.nodeID
        let reply: Ray_Rpc_FetchObjectReply
        do {
            reply = try await raylet.unary(NodeManagerMethods.fetchObject, request, options: CallOptions(timeout: .seconds(600)))
        } catch {
            let node = (try? NodeID(bytes: location.nodeID))?.hex ?? "?"
            if error.code == .notFound { throw RayError(.objectLost, error.message.replacingOccurrences(of: "ObjectLostError: ", with: "")) }
            throw RayError(.objectLost, "object \(id) could not be pulled from node \(node) (\(location.rayletAddress))", cause: "\(error)")
        }
        guard reply.offset >= 0, reply.size == location.size, Int(reply.offset + reply.size) <= region.size else {
            throw RayError(.system, "the raylet placed the copy of object \(id) outside the store (\(reply.offset)+\(reply.size))")
        }
        var here = Ray_Rpc_ObjectLocation()
        here.nodeID = Data(nodeID.bytes)
        here.rayletAddress = rayletAddress
        here.offset = reply.offset
        here.size = reply.size
        return here
    }

    private func tellOwner(_ owner: Ray_Rpc_Address, _ id: ObjectID, _ copy: Ray_Rpc_ObjectLocation) {
        var request = Ray_Rpc_AddObjectLocationRequest()
        request.objectID = Data(id.bytes)
        request.location = copy
        Task(executorPreference: ThreadExecutor.coreWorker) { [self] in
            _ = try? await channels.channel(for: owner).unary(
                CoreWorkerMethods.addObjectLocation, request, options: CallOptions(timeout: .seconds(10)))
        }
    }
}

/// The copies of this process's objects in the stores of other nodes (and of this node, when the
/// owner is elsewhere), so freeing an object frees them all.
final class CopyTable: Sendable {
    private let copies = Mutex<[ObjectID: [Ray_Rpc_ObjectLocation]]>([:])
    private let raylets = Mutex<[String: RPCChannel]>([:])

    func add(_ id: ObjectID, _ location: Ray_Rpc_ObjectLocation) {
        copies.withLock { $0[id, default: []].append(location) }
    }

    /// The object is out of scope: delete its copies, grouped by raylet.
    func free(_ id: ObjectID) {
        guard let locations = copies.withLock({ $0.removeValue(forKey: id) }) else { return }
        for address in Set(locations.map(\.rayletAddress)) where !address.isEmpty { delete([id], at: address) }
    }

    /// Where the copies of `id` are.
    func locations(of id: ObjectID) -> [Ray_Rpc_ObjectLocation] { copies.withLock { $0[id] ?? [] } }

    /// Removes and returns a copy of `id` on a node other than `node` (which died), if one is left.
    func takeSurvivor(_ id: ObjectID, excluding node: Data) -> Ray_Rpc_ObjectLocation? {
        copies.withLock { copies in
            guard let index = copies[id]?.firstIndex(where: { $0.nodeID != node }) else { return nil }
            return copies[id]!.remove(at: index)
        }
    }

    /// Forgets every copy on `node` (it died, and its store with it).
    func dropNode(_ node: Data) {
        copies.withLock { copies in
            for id in Array(copies.keys) {
                copies[id]!.removeAll { $0.nodeID == node }
                if copies[id]!.isEmpty { copies[id] = nil }
            }
        }
    }

    /// How many objects have copies elsewhere (for tests).
    var count: Int { copies.withLock { $0.count } }

    func delete(_ ids: [ObjectID], at address: String) {
        guard let channel = channel(address) else { return }
        var request = Ray_Rpc_DeleteObjectsRequest()
        request.objectIds = ids.map { Data($0.bytes) }
        Task(executorPreference: ThreadExecutor.coreWorker) {
            _ = try? await channel.unary(NodeManagerMethods.deleteObjects, request, options: CallOptions(timeout: .seconds(10)))
        }
    }

    private func channel(_ address: String) -> RPCChannel? {
        if let channel = raylets.withLock({ $0[address] }) { return channel }
        guard let channel = try? RPCChannel(target: address) else { return nil }
        return raylets.withLock { raylets in
            if let existing = raylets[address] { return existing }
            raylets[address] = channel
            return channel
        }
    }
}
