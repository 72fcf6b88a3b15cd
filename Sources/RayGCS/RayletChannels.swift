import RayCommon
import RayProtos
import RayRPC
import Synchronization

/// The GCS's channels to raylets, by node, shared by the actor and placement-group managers (one
/// connection per raylet, not one per manager).
final class RayletChannels: Sendable {
    private let channels = Mutex<[NodeID: RPCChannel]>([:])

    func channel(to node: Ray_Rpc_GcsNodeInfo) throws(RPCError) -> RPCChannel {
        let id = try NodeID(node.nodeID, field: "node_id")
        if let channel = channels.withLock({ $0[id] }) { return channel }
        let channel = try RPCChannel(host: node.nodeManagerAddress, port: Int(node.nodeManagerPort))
        return channels.withLock { known in
            if let existing = known[id] { return existing }
            known[id] = channel
            return channel
        }
    }

    /// The node died: its channel goes.
    func forget(_ node: NodeID) { _ = channels.withLock { $0.removeValue(forKey: node) } }
}
