import Foundation
import RayCommon
import RayGCS
import RayGCSClient
import RayProtos
import Testing

@Suite(.timeLimit(.minutes(1))) struct GCSClientTests {
    /// The clients' deadline. (It was 30 s while the GCS's handlers needed a thread of Swift's pool,
    /// which the suite's CPU-bound tests held for 5 s and more under AddressSanitizer; the GCS has a
    /// thread of its own now.)
    static let deadline: Duration = .seconds(5)

    @Test func kvNodesAndJobs() async throws {
        let gcs = try GCSServer()
        let client = try GCSClient(address: "127.0.0.1:\(gcs.port)", timeout: Self.deadline)
        let kv = client.kv(namespace: "serve")
        #expect(try await kv.put("app", Data("v1".utf8)))
        #expect(try await !kv.put("app", Data("v2".utf8), overwrite: false))
        #expect(try await kv.get("app") == Data("v1".utf8))
        #expect(try await client.kv(namespace: "other").get("app") == nil)
        _ = try await kv.put("app/a", Data())
        #expect(try await kv.keys(prefix: "app") == ["app", "app/a"])
        #expect(try await kv.delete("app", byPrefix: true) == 2)

        let first = try await client.nextJobID()
        let second = try await client.nextJobID()
        #expect(second.number == first.number + 1)

        var node = Ray_Rpc_GcsNodeInfo()
        let id = NodeID.random()
        node.nodeID = Data(id.bytes)
        node.nodeManagerAddress = "127.0.0.1"
        node.nodeManagerPort = 1
        try await client.register(node: node)
        #expect(try await client.nodes().map(\.nodeID) == [Data(id.bytes)])
        try await client.unregister(node: id, reason: "done")
        #expect(try await client.nodes().first?.state == .dead)
        await gcs.shutdown(grace: .zero)
    }

    @Test func subscriptionSeesChangesFromNowInOrder() async throws {
        let gcs = try GCSServer(healthCheckPeriod: .seconds(60))
        let client = try GCSClient(address: "127.0.0.1:\(gcs.port)", timeout: Self.deadline)
        // Published before subscribing: not delivered.
        var early = Ray_Rpc_GcsNodeInfo()
        early.nodeID = Data(NodeID.random().bytes)
        early.nodeManagerAddress = "127.0.0.1"
        early.nodeManagerPort = 1
        try await client.register(node: early)

        let stream = try await client.subscribe([.gcsNodeInfoChannel], pollTimeout: Self.deadline)
        var iterator = stream.makeAsyncIterator()
        var ids: [NodeID] = []
        for _ in 0..<3 {
            let id = NodeID.random()
            ids.append(id)
            var node = early
            node.nodeID = Data(id.bytes)
            try await client.register(node: node)
        }
        try await client.unregister(node: ids[0], reason: "gone")
        var seen: [(Data, Ray_Rpc_GcsNodeInfo.GcsNodeState)] = []
        while seen.count < 4, let message = try await iterator.next() {
            seen.append((message.nodeInfoMessage.nodeID, message.nodeInfoMessage.state))
        }
        #expect(seen.map(\.0) == ids.map { Data($0.bytes) } + [Data(ids[0].bytes)])
        #expect(seen.map(\.1) == [.alive, .alive, .alive, .dead])
        await gcs.shutdown(grace: .zero)
    }
}
