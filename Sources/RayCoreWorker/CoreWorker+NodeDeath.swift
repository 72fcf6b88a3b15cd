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

/// Nodes that die, as the GCS publishes them: this process's view of the objects and actors that
/// were there is corrected at once, instead of when a call to the node fails.
extension CoreWorker {
    /// Follows the GCS's node channel until the task is cancelled (at shutdown).
    func followNodeDeaths(gcsAddress: String) -> Task<Void, Never> {
        Task(executorPreference: ThreadExecutor.coreWorker) { [weak self] in
            guard let gcs = try? GCSClient(address: gcsAddress),
                  let changes = try? await gcs.subscribe([.gcsNodeInfoChannel]) else { return }
            do {
                for try await message in changes {
                    guard case .nodeInfoMessage(let info) = message.innerMessage, info.state == .dead,
                          let node = try? NodeID(bytes: info.nodeID) else { continue }
                    guard let self else { return }
                    self.nodeDied(node)
                }
            } catch {}
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
        let actors = actorSubmitter.state.withLock { actors in
            actors.compactMap { id, queue in queue.address.nodeID == dead && queue.dead == nil ? (id, queue.className) : nil }
        }
        for (actorID, className) in actors {
            actorKilled(actorID, className: className, cause: "The actor died because its node has died. Node Id: \(node.hex)")
        }
    }
}
