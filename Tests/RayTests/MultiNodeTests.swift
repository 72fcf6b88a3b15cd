import Foundation
import RayProtos
import RayRPC
import RayServices
import Testing

/// Clusters of several nodes (a GCS and a raylet per node, each node at its own loopback address),
/// started with `ray start --head` and `ray start --address`, driven by the integration app.
@Suite(.serialized) struct MultiNodeTests {
    @Test func tasksAndActorsGoWhereTheirStrategyLabelsAndResourcesSay() async throws {
        let cluster = try await TestCluster.start(
            head: ["--num-cpus", "2"],
            workers: [["--num-cpus", "2", "--labels", "zone=b"],
                      ["--num-cpus", "2", "--resources", "{\"accel\": 1}", "--labels", "zone=c"]])
        do {
            let run = try await IntegrationApp.run(["multinode"], environment: ["RAY_ADDRESS": cluster.address], timeout: .seconds(120))
            #expect(run.status == 0, "\(run.output)")
            #expect(run.int("nodes_alive") == 3)
            #expect(run.int("node_labels_have_ids") == 1, "every node carries ray.io/node-id")
            #expect(run.int("driver_on_head") == 1)
            #expect(run.int("spread_distinct_nodes") == 3, "SPREAD put one of three long tasks on each node")
            #expect(run.int("hybrid_local") == 5, "small work one at a time stays on the driver's node")
            #expect(run.int("label_b_ok") == 1, "zone=b runs on the only zone=b node")
            #expect(run.int("label_not_in_ok") == 1, "zone=!in(b,c) runs on the head, the only other node")
            #expect(run.int("accel_ok") == 1, "a task needing accel runs on the only node with it")
            #expect(run.int("affinity_ok") == 1)
            #expect(run.values["hard_affinity_kind"] == "TaskUnschedulableError")
            #expect(run.int("hard_affinity_message_ok") == 1)
            #expect(run.int("soft_affinity_ran") == 1)
            #expect(run.int("locator_on_accel") == 1, "an actor with hard affinity lives on that node")
            #expect(run.int("cross_node_call_from_accel") == 1)
            #expect(run.int("cross_node_call_count") == 7, "a task on one node called an actor on another")
            #expect(run.int("counter_after") == 7)
            // The job's workers on every node stop with it, and what their leases held is free again.
            for raylet in cluster.rayletPIDs { try await IntegrationApp.expectNoWorkersLeft(startedBy: raylet) }
            var status = ""
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                status = try await TestCluster.runRay(["status", "--address", cluster.address], temp: cluster.nodes[0].temp).text
                if status.contains(" 0.0/6.0 CPU\n") && status.contains(" 0.0/1.0 accel\n") { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(status.contains(" 0.0/6.0 CPU\n") && status.contains(" 0.0/1.0 accel\n"), "\(status)")
            #expect(status.components(separatedBy: "\n 1 node_").count == 4, "three active nodes: \(status)")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func infeasibleWorkWaitsIsReportedAndRunsWhenANodeThatFitsJoins() async throws {
        let cluster = try await TestCluster.start(head: ["--num-cpus", "2"])
        do {
            let app = try IntegrationApp.Running(["infeasible-then-join"], environment: ["RAY_ADDRESS": cluster.address])
            #expect(try await app.value("late_waiting", within: .seconds(30)) == "1")
            #expect(app.output.contains("cannot be scheduled right now: {'late': 1.0}"), "the driver is warned: \(app.output)")
            // `ray status` lists it among the pending demands.
            var status = ""
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                status = try await TestCluster.runRay(["status", "--address", cluster.address], temp: cluster.nodes[0].temp).text
                if status.contains("{'late': 1.0}: 1+ pending tasks/actors") { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(status.contains("{'late': 1.0}: 1+ pending tasks/actors"), "\(status)")
            try await cluster.addNode(["--num-cpus", "1", "--resources", "{\"late\": 1}"])
            let run = try await app.finish(timeout: .seconds(90))
            #expect(run.status == 0, "\(run.output)")
            #expect(run.int("late_ran_on_new_node") == 1, "it ran on the node that joined")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func aBigObjectCrossesNodesIntactAndEveryCopyGoesWithItsRefs() async throws {
        // 1 GiB as the issue asks; 256 MiB under the address sanitizer (its debug copy loops are slow).
        let size = ProcessInfo.processInfo.environment["ASAN_OPTIONS"] == nil ? 1 << 30 : 256 << 20
        let cluster = try await TestCluster.start(
            head: ["--num-cpus", "2"],
            workers: [["--num-cpus", "2", "--labels", "zone=b"],
                      ["--num-cpus", "2", "--resources", "{\"accel\": 1}", "--labels", "zone=c"]])
        do {
            let gcs = try RPCChannel(target: cluster.address)
            let nodes = try await gcs.unary(GCSMethods.getAllNodeInfo, Ray_Rpc_GetAllNodeInfoRequest(), options: CallOptions(timeout: .seconds(5))).nodeInfoList
            let raylets = try nodes.map { try RPCChannel(host: $0.nodeManagerAddress, port: Int($0.nodeManagerPort)) }
            func used() async throws -> [Int64] {
                var bytes: [Int64] = []
                for raylet in raylets {
                    bytes.append(try await raylet.unary(NodeManagerMethods.getNodeStats, Ray_Rpc_GetNodeStatsRequest(), options: CallOptions(timeout: .seconds(5))).objectStoreUsed)
                }
                return bytes
            }
            let app = try IntegrationApp.Running(["objects-across", String(size)],
                                                 environment: ["RAY_ADDRESS": cluster.address, "APP_LOOK_MS": "3000"])
            _ = try await app.value("holding", within: .seconds(120))
            let held = try await used()
            #expect(held.allSatisfy { $0 >= Int64(size) }, "a copy on each of the 3 nodes (made, pulled by the driver, pulled for the task): \(held)")
            let run = try await app.finish(timeout: .seconds(60))
            #expect(run.status == 0, "\(run.output)")
            #expect(run.int("driver_checksum_ok") == 1, "the driver's copy arrived intact")
            #expect(run.int("task_checksum_ok") == 1, "the task's copy arrived intact")
            #expect(run.int("task_ran_on_b") == 1)
            let zoneB = try #require(nodes.firstIndex { $0.labels["zone"] == "b" })
            let pulledForLeases = try await raylets[zoneB].unary(
                NodeManagerMethods.getNodeStats, Ray_Rpc_GetNodeStatsRequest(), options: CallOptions(timeout: .seconds(5))).leaseArgumentsPulled
            #expect(pulledForLeases >= 1, "b's raylet pulled the task's argument before it granted the lease: \(pulledForLeases)")
            var after = try await used()
            let deadline = ContinuousClock.now + .seconds(10)
            while after.contains(where: { $0 != 0 }) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
                after = try await used()
            }
            #expect(after == [0, 0, 0], "every node's store is empty once the refs are gone: \(after)")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func aNodeWhoseRayletIsKilledIsMarkedDeadAndWhatWasOnItFailsClearly() async throws {
        let fastChecks = ["RAY_health_check_period_ms": "200", "RAY_health_check_failure_threshold": "3",
                          "RAY_health_check_timeout_ms": "500"]
        let cluster = try await TestCluster.start(
            head: ["--num-cpus", "2"],
            workers: [["--num-cpus", "2", "--labels", "zone=b"], ["--num-cpus", "1", "--labels", "zone=c"]],
            headEnvironment: fastChecks)
        do {
            let app = try IntegrationApp.Running(["node-death"], environment: ["RAY_ADDRESS": cluster.address])
            _ = try await app.value("ready", within: .seconds(60))
            let doomed = try #require(TestCluster.recordedPIDs(in: cluster.nodes[1].temp, role: "raylet").first)
            let killed = ContinuousClock.now
            kill(doomed, SIGKILL)
            _ = try await app.value("marked_dead", within: .seconds(15))
            // 3 missed checks 200 ms apart, each up to 500 ms: well within 5 s.
            #expect(ContinuousClock.now - killed < .seconds(5), "the GCS marked the node dead within its health-check settings")
            let run = try await app.finish(timeout: .seconds(90))
            #expect(run.status == 0, "\(run.output)")
            #expect(run.values["actor_kind"] == "ActorDiedError")
            #expect(run.int("actor_names_node") == 1, "the actor's callers hear which node died: \(run.output)")
            #expect(run.values["object_kind"] == "ObjectLostError")
            #expect(run.int("object_names_node") == 1, "\(run.output)")
            #expect(run.int("copied_to_c") == 1, "\(run.output)")
            #expect(run.int("survivor_ok") == 1, "an object with a copy on a live node is read from it: \(run.output)")
            #expect(run.values["task_kind"] == "WorkerCrashedError")
            #expect(run.int("task_names_node") == 1, "\(run.output)")
            #expect(run.int("after_ok") == 1, "the cluster goes on without the node")
            // The killed raylet's workers went with it.
            try await IntegrationApp.expectNoWorkersLeft(startedBy: doomed)
            // A node started again at the same address registers as a new node; the old one stays dead.
            try await cluster.addNode(["--num-cpus", "1"], ip: cluster.nodes[1].ip)
            let gcs = try RPCChannel(target: cluster.address)
            let there = try await gcs.unary(GCSMethods.getAllNodeInfo, Ray_Rpc_GetAllNodeInfoRequest(), options: CallOptions(timeout: .seconds(5)))
                .nodeInfoList.filter { $0.nodeManagerAddress == cluster.nodes[1].ip }
            let hex = { (id: Data) in id.map { String(format: "%02x", $0) }.joined() }
            #expect(there.count == 2, "\(there)")
            #expect(there.first { $0.state == .dead }.map { hex($0.nodeID) } == run.values["doomed_node"])
            #expect(there.first { $0.state == .alive }.map { hex($0.nodeID) != run.values["doomed_node"] } == true)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }
}
