import Foundation
import RayProtos
import RayRPC
import RayServices
import Synchronization
import Testing

/// The autoscaler with the local provider: a head started with `ray start --head --autoscaling-config`
/// launches worker nodes as `ray start --address` processes on 127.0.0.2, 127.0.0.3, … and ends them.
@Suite(.serialized) struct AutoscalerTests {
    /// 0.05 minutes: idle workers go after 3 s.
    static func config(maxWorkers: Int, cpuMin: Int, cpuMax: Int) -> String {
        """
        cluster_name: autoscaler-test
        max_workers: \(maxWorkers)
        idle_timeout_minutes: 0.05
        upscaling_speed: 1.0
        provider:
          type: local
        head_node_type: head
        available_node_types:
          head:
            resources: {CPU: 1}
            max_workers: 0
          cpu:
            resources: {CPU: 1}
            min_workers: \(cpuMin)
            max_workers: \(cpuMax)
          accel:
            resources: {CPU: 1, accel: 1}
            labels: {kind: accel}
            max_workers: 1
        """
    }

    static func startCluster(_ yaml: String) async throws -> (TestCluster, URL) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-\(UUID().uuidString).yaml")
        try Data(yaml.utf8).write(to: file)
        let cluster = try await TestCluster.start(head: ["--num-cpus", "1", "--autoscaling-config", file.path])
        return (cluster, file)
    }

    static func aliveNodes(_ address: String) async throws -> [Ray_Rpc_GcsNodeInfo] {
        let gcs = try RPCChannel(target: address)
        let reply = try await gcs.unary(GCSMethods.getAllNodeInfo, Ray_Rpc_GetAllNodeInfoRequest(), options: CallOptions(timeout: .seconds(5)))
        return reply.nodeInfoList.filter { $0.state == .alive }
    }

    /// Polls until `condition` holds for the alive nodes, or fails after `timeout`.
    @discardableResult
    static func waitForNodes(_ address: String, _ what: String, timeout: Duration = .seconds(60),
                             _ condition: ([Ray_Rpc_GcsNodeInfo]) -> Bool) async throws -> [Ray_Rpc_GcsNodeInfo] {
        let deadline = ContinuousClock.now + timeout
        var nodes: [Ray_Rpc_GcsNodeInfo] = []
        while ContinuousClock.now < deadline {
            nodes = try await aliveNodes(address)
            if condition(nodes) { return nodes }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("\(what) within \(timeout): \(nodes.map { "\($0.nodeManagerAddress) \($0.resourcesTotal)" })")
        return nodes
    }

    @Test func minWorkersStartWithTheHeadAndAnAccelTaskGetsANodeThatIsRemovedWhenIdle() async throws {
        let (cluster, file) = try await Self.startCluster(Self.config(maxWorkers: 3, cpuMin: 1, cpuMax: 2))
        defer { try? FileManager.default.removeItem(at: file) }
        do {
            // min_workers: the cpu node comes up with no work, and stays past the idle timeout.
            try await Self.waitForNodes(cluster.address, "the min_workers node joins") { $0.count == 2 }
            let run = try await IntegrationApp.run(["as-accel"], environment: ["RAY_ADDRESS": cluster.address], timeout: .seconds(150))
            #expect(run.status == 0, "\(run.output)")
            let nodes = try await Self.aliveNodes(cluster.address)
            let accel = nodes.first { $0.nodeID.hexString == run.values["accel_node"] }
            #expect(accel?.resourcesTotal["accel"] == 1, "the task ran on a node of the accel type: \(nodes)")
            #expect(accel?.labels["kind"] == "accel", "with the type's labels")
            #expect(accel?.nodeManagerAddress != "127.0.0.1", "on a node of its own loopback address")
            let status = try await TestCluster.runRay(["status", "--address", cluster.address, "-v"], temp: cluster.nodes[0].temp).text
            #expect(status.contains(" 1 head\n"), "\(status)")
            #expect(status.contains("Idle:"), "\(status)")
            #expect(status.contains("Node: local-"), "ray status -v names the instances: \(status)")

            // Idle for 3 s: the accel node is drained and ended; the min_workers cpu node is kept.
            let after = try await Self.waitForNodes(cluster.address, "the idle accel node is removed", timeout: .seconds(30)) { nodes in
                nodes.count == 2 && !nodes.contains { $0.resourcesTotal["accel"] != nil }
            }
            #expect(after.contains { $0.resourcesTotal["CPU"] == 1 && !$0.isHeadNode }, "the min_workers node stays: \(after)")
            try await Task.sleep(for: .seconds(4))
            #expect(try await Self.aliveNodes(cluster.address).count == 2, "min_workers keeps one cpu node however long it idles")
        } catch {
            Issue.record("\(error)")
        }
        await cluster.stop()
    }

    @Test func requestResourcesScalesWithNoTaskAndABurstNeverPassesMaxWorkers() async throws {
        let (cluster, file) = try await Self.startCluster(Self.config(maxWorkers: 3, cpuMin: 0, cpuMax: 3))
        defer { try? FileManager.default.removeItem(at: file) }
        do {
            #expect(try await Self.aliveNodes(cluster.address).count == 1, "no min_workers: the head alone")
            // Three CPUs at once: the head's one and two cpu nodes.
            let request = try await IntegrationApp.run(["as-request", "3"], environment: ["RAY_ADDRESS": cluster.address])
            #expect(request.status == 0, "\(request.output)")
            #expect(request.int("negative_refused") == 1, "\(request.output)")
            try await Self.waitForNodes(cluster.address, "requestResources brings two nodes") { $0.count == 3 }
            let status = try await TestCluster.runRay(["status", "--address", cluster.address], temp: cluster.nodes[0].temp).text
            #expect(status.contains(" {'CPU': 1.0}: 3 from request_resources()"), "\(status)")
            // While the request stands, the idle nodes stay.
            try await Task.sleep(for: .seconds(5))
            #expect(try await Self.aliveNodes(cluster.address).count == 3, "nodes a request counts on are not ended")
            let withdraw = try await IntegrationApp.run(["as-request", "0"], environment: ["RAY_ADDRESS": cluster.address])
            #expect(withdraw.status == 0, "\(withdraw.output)")
            try await Self.waitForNodes(cluster.address, "withdrawn: the idle nodes go", timeout: .seconds(30)) { $0.count == 1 }

            // 50 one-CPU tasks: never more than max_workers (3) workers.
            let most = Atomic<Int>(0)
            let sampler = Task {
                while !Task.isCancelled {
                    if let count = try? await Self.aliveNodes(cluster.address).count {
                        _ = most.max(count - 1, ordering: .relaxed)
                    }
                    try? await Task.sleep(for: .milliseconds(25))
                }
            }
            let burst = try await IntegrationApp.run(["as-burst", "50"], environment: ["RAY_ADDRESS": cluster.address], timeout: .seconds(200))
            sampler.cancel()
            #expect(burst.status == 0, "\(burst.output)")
            #expect(burst.int("burst_done") == 50)
            #expect(most.load(ordering: .relaxed) == 3, "the burst scaled to max_workers and no further")
            #expect((burst.int("burst_nodes") ?? 0) >= 2, "the burst ran on launched nodes too: \(burst.output)")
        } catch {
            Issue.record("\(error)")
        }
        await cluster.stop()
    }

    @Test func aNodeThatFailsToLaunchIsListedAndRetriedWithBackoff() async throws {
        // `ray start` refuses an object store under 64 MiB: every launch of this type fails for real.
        let yaml = Self.config(maxWorkers: 2, cpuMin: 0, cpuMax: 1) + """

              broken:
                resources: {CPU: 1, broken: 1, object_store_memory: 1000}
                max_workers: 1
            """
        let (cluster, file) = try await Self.startCluster(yaml)
        defer { try? FileManager.default.removeItem(at: file) }
        do {
            let request = try await IntegrationApp.run(["as-request-broken"], environment: ["RAY_ADDRESS": cluster.address])
            #expect(request.status == 0, "\(request.output)")
            var status = ""
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline, !status.contains("broken: LaunchFailed") {
                try await Task.sleep(for: .milliseconds(200))
                status = try await TestCluster.runRay(["status", "--address", cluster.address], temp: cluster.nodes[0].temp).text
            }
            #expect(status.contains("broken: LaunchFailed (latest_attempt: "), "\(status)")
            #expect(status.contains("object-store-memory"), "the failure says why: \(status)")
            // Over 8 s: the first try, one after 5 s, the next not before 15 s (never a tight loop).
            try await Task.sleep(for: .seconds(8))
            let logs = cluster.nodes[0].temp.appendingPathComponent("autoscaler")
            let attempts = (try FileManager.default.contentsOfDirectory(atPath: logs.path)).filter { $0.hasSuffix("-broken.log") }
            #expect((2...3).contains(attempts.count), "launch attempts with backoff: \(attempts)")
            #expect(try await Self.aliveNodes(cluster.address).count == 1, "no node of the broken type joined")
        } catch {
            Issue.record("\(error)")
        }
        await cluster.stop()
    }

    @Test func aConfigThatIsWrongStopsTheHeadFromStarting() async throws {
        let temp = TestCluster.freshTemp()
        defer { try? FileManager.default.removeItem(at: temp) }
        let file = temp.appendingPathComponent("bad.yaml")
        for (yaml, expected) in [
            (Self.config(maxWorkers: 3, cpuMin: 4, cpuMax: 2), "available_node_types.cpu.min_workers: min_workers (4) is above max_workers (2)"),
            (Self.config(maxWorkers: 3, cpuMin: 0, cpuMax: 2).replacingOccurrences(of: "head_node_type: head", with: "head_node_type: gpu"),
             "head_node_type: `gpu` is not one of available_node_types"),
            ("cluster_name: x\nprovider: {type: local\n", "YAML error at line "),
        ] {
            try Data(yaml.utf8).write(to: file)
            let output = try await TestCluster.runRay(["start", "--head", "--port", "0", "--autoscaling-config", file.path], temp: temp)
            #expect(output.status != 0)
            #expect(output.text.contains(expected), "\(output.text)")
            #expect(TestCluster.recordedPIDs(in: temp).isEmpty, "nothing started")
        }
        let worker = try await TestCluster.runRay(["start", "--address", "127.0.0.1:1", "--autoscaling-config", file.path], temp: temp)
        #expect(worker.status != 0)
        #expect(worker.text.contains("--autoscaling-config"), "\(worker.text)")
    }
}

extension Data {
    var hexString: String { map { String(format: "%02x", $0) }.joined() }
}
