#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayConcurrency
import RayGCSClient
import RayProtos
import RayRPC
import RayServices
import Synchronization

/// Nodes that die, as the GCS publishes them: this process's view of the objects and actors that
/// were there is corrected at once, instead of when a call to the node fails.
extension CoreWorker {
    /// Follows the GCS's node channel until the task is cancelled (at shutdown); while the GCS cannot
    /// be reached, it tries again every second.
    func followNodeDeaths(gcsAddress: String) -> Task<Void, Never> {
        Task(executorPreference: ThreadExecutor.coreWorker) { [weak self] in
            guard let gcs = try? GCSClient(address: gcsAddress) else { return }
            while !Task.isCancelled {
                if let changes = try? await gcs.subscribe([.gcsNodeInfoChannel]) {
                    do {
                        for try await message in changes {
                            guard case .nodeInfoMessage(let info) = message.innerMessage, info.state == .dead,
                                  let node = try? NodeID(bytes: info.nodeID) else { continue }
                            guard let self else { return }
                            self.nodeDied(node)
                        }
                    } catch {}
                    return  // the stream ends only when this task is cancelled
                }
                try? await ThreadExecutor.coreWorker.sleep(for: .seconds(1))
            }
        }
    }

    /// `node` is dead. Owned objects whose copy was there move to another copy if one is left, or
    /// fail with `ObjectLostError` naming the object and the node; borrowed ones are asked of their
    /// owner again; copies there are forgotten; actors there are dead for this process's callers
    /// (queued and later calls fail at once; calls already pushed fail when their push does).
    func nodeDied(_ node: NodeID) {
        let dead = Data(node.bytes)
        let local = Data(nodeID.bytes)
        store.nodeDied(dead) { id, _ in
            guard let copy = copies.takeSurvivor(id, excluding: dead) else {
                return .error(TaskFailure(
                    kind: .objectLost, type: "",
                    message: "all copies of object \(id) were lost: node \(node.hex) died, and with it the only copy",
                    function: ""))
            }
            return copy.nodeID == local ? .shared(offset: Int(copy.offset), size: Int(copy.size)) : .remote(copy)
        }
        copies.dropNode(dead)
        // Calls in flight there fail now (as the push's failure: WorkerCrashedError or ActorDiedError,
        // naming the node), not when a connection to a vanished host times out.
        callsToNodes.nodeDied(dead)
        let actors = actorSubmitter.state.withLock { actors in
            actors.compactMap { id, queue in queue.address.nodeID == dead && queue.dead == nil ? (id, queue.className) : nil }
        }
        for (actorID, className) in actors {
            actorKilled(actorID, className: className, cause: "The actor died because its node has died. Node Id: \(node.hex)")
        }
    }
}

/// Calls in flight to other nodes (task pushes, lease requests held at their raylets), by node, so a
/// node's death cancels them.
final class NodeCallRegistry: Sendable {
    private struct State {
        var nextID: UInt64 = 0
        var calls: [Data: [UInt64: RPCCallHandle?]] = [:]
        var deadNodes: Set<Data> = []
    }
    private let state = Mutex(State())

    /// Registers a call about to start; its handle comes with ``attach(_:to:on:)``.
    func start(on node: Data) -> UInt64 {
        state.withLock { state in
            state.nextID += 1
            state.calls[node, default: [:]][state.nextID] = .some(nil)
            return state.nextID
        }
    }

    /// The started call's handle (unless it already finished); cancelled at once if its node died meanwhile.
    func attach(_ handle: RPCCallHandle, to id: UInt64, on node: Data) {
        let cancel = state.withLock { state -> Bool in
            if state.deadNodes.contains(node) { return true }
            guard state.calls[node]?[id] != nil else { return false }
            state.calls[node]![id] = handle
            return false
        }
        if cancel { handle.cancel() }
    }

    func remove(_ id: UInt64, node: Data) {
        state.withLock { state in
            state.calls[node]?[id] = nil
            if state.calls[node]?.isEmpty == true { state.calls[node] = nil }
        }
    }

    /// Cancels every call to `node`, and any that starts after.
    func nodeDied(_ node: Data) {
        let handles = state.withLock { state -> [RPCCallHandle] in
            state.deadNodes.insert(node)
            return (state.calls.removeValue(forKey: node) ?? [:]).values.compactMap { $0 }
        }
        for handle in handles { handle.cancel() }
    }

    /// The GCS said `node` died.
    func isDead(_ node: Data) -> Bool { state.withLock { $0.deadNodes.contains(node) } }

    var count: Int { state.withLock { $0.calls.values.reduce(0) { $0 + $1.count } } }
}
