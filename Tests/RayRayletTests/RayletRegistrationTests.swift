import Foundation
import RayCommon
import RayGCS
import RayProtos
import RayRaylet
import RayRPC
import RayServices
import Testing

@Suite(.timeLimit(.minutes(1))) struct RayletRegistrationTests {
    @Test func registersWithResourcesAndUnregistersOnShutdown() async throws {
        let gcs = try GCSServer()
        let address = "127.0.0.1:\(gcs.port)"
        var options = Raylet.Options()
        options.isHead = true
        options.resources = Raylet.defaultResources(host: "127.0.0.1", numCPUs: 3, isHead: true)
        options.resources["GPU_like"] = 2
        options.objectStoreMemory = 8 * 1024 * 1024
        let raylet = try await Raylet(gcsAddress: address, options: options)
        let channel = try RPCChannel(target: address)

        let nodes = try await channel.unary(GCSMethods.getAllNodeInfo, Ray_Rpc_GetAllNodeInfoRequest()).nodeInfoList
        #expect(nodes.count == 1)
        let node = try #require(nodes.first)
        #expect(node.nodeID == Data(raylet.nodeID.bytes))
        #expect(node.state == .alive)
        #expect(node.nodeManagerPort == Int32(raylet.port))
        #expect(node.isHeadNode)
        #expect(node.resourcesTotal["CPU"] == 3)
        #expect(node.resourcesTotal["GPU_like"] == 2)
        #expect(node.resourcesTotal["node:__internal_head__"] == 1)
        #expect(node.resourcesTotal["object_store_memory"] == Double(raylet.objectStore.capacity))
        #expect(raylet.objectStore.capacity == 8 * 1024 * 1024)
        #expect(node.labels["ray.io/object-store"] == raylet.objectStore.region.name)
        #expect(FileManager.default.fileExists(atPath: "/dev/shm/\(raylet.objectStore.region.name)"))

        await raylet.shutdown(reason: "test over")
        let after = try await channel.unary(GCSMethods.getAllNodeInfo, Ray_Rpc_GetAllNodeInfoRequest()).nodeInfoList
        #expect(after.first?.state == .dead)
        #expect(after.first?.deathReason == "test over")
        await gcs.shutdown(grace: .zero)
    }

    @Test func aRayletRemovesStoresLeftByKilledRaylets() async throws {
        // A pid that is gone: a child that exited and was reaped.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let stale = "/dev/shm/swift-ray-\(child.processIdentifier)-0123456789ab"
        let live = "/dev/shm/swift-ray-\(getpid())-0123456789ab"
        for path in [stale, live] { FileManager.default.createFile(atPath: path, contents: Data([1])) }
        defer { for path in [stale, live] { unlink(path) } }
        let removed = Raylet.removeStaleStores()
        #expect(removed.contains("swift-ray-\(child.processIdentifier)-0123456789ab"))
        #expect(!FileManager.default.fileExists(atPath: stale))
        #expect(FileManager.default.fileExists(atPath: live), "a live raylet's store stays")
    }

    @Test func noGCSIsAClearErrorWithinTheDeadline() async throws {
        let start = ContinuousClock.now
        do {
            _ = try await Raylet(gcsAddress: "127.0.0.1:1", options: Raylet.Options(), registerTimeout: .milliseconds(500))
            Issue.record("a raylet without a GCS must not start")
        } catch let error as RayError {
            #expect(error.kind == .connection)
            #expect(error.message.contains("127.0.0.1:1"))
        }
        #expect(ContinuousClock.now - start < .seconds(10), "bounded by the 500 ms register timeout, not hung")
    }
}

@Suite(.timeLimit(.minutes(1))) struct HealthCheckTests {
    @Test func gcsMarksANodeDeadWhenItsRayletStopsAnsweringAndKeepsHealthyOnesAlive() async throws {
        // Checks every 50 ms; a check that is not answered within 2 s fails (a closed port fails at
        // once). A healthy raylet is marked dead only after 3 checks in a row go unanswered, 6 s: far
        // from the scheduling delays of 2 busy cores under AddressSanitizer, where a 250 ms deadline
        // failed three times running while the suite's first tests started.
        let gcs = try GCSServer(healthCheckPeriod: .milliseconds(50), healthCheckTimeout: .seconds(2),
                                healthCheckFailureThreshold: 3)
        let address = "127.0.0.1:\(gcs.port)"
        var options = Raylet.Options()
        options.objectStoreMemory = 1 << 20
        let healthy = try await Raylet(gcsAddress: address, options: options)

        // A node whose raylet is gone: registered, then its port closed without unregistering.
        let gone = try RPCServer(router: RPCRouter())
        let gonePort = gone.port
        await gone.shutdown(grace: .zero)
        var register = Ray_Rpc_RegisterNodeRequest()
        let goneID = NodeID.random()
        register.nodeInfo.nodeID = Data(goneID.bytes)
        register.nodeInfo.nodeManagerAddress = "127.0.0.1"
        register.nodeInfo.nodeManagerPort = Int32(gonePort)
        let channel = try RPCChannel(target: address)
        _ = try await channel.unary(GCSMethods.registerNode, register)

        let deadline = ContinuousClock.now + .seconds(10)
        var nodes: [Ray_Rpc_GcsNodeInfo] = []
        while ContinuousClock.now < deadline {
            nodes = try await channel.unary(GCSMethods.getAllNodeInfo, Ray_Rpc_GetAllNodeInfoRequest()).nodeInfoList
            if nodes.contains(where: { $0.nodeID == Data(goneID.bytes) && $0.state == .dead }) { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let dead = try #require(nodes.first { $0.nodeID == Data(goneID.bytes) })
        #expect(dead.state == .dead, "the GCS did not notice the missing raylet within 10 s")
        #expect(dead.deathReason.contains("missing too many heartbeats"))
        let alive = try #require(nodes.first { $0.nodeID == Data(healthy.nodeID.bytes) })
        #expect(alive.state == .alive, "a raylet that answers must stay alive")

        await healthy.shutdown()
        await gcs.shutdown(grace: .zero)
    }
}
