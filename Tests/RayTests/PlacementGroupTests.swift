import Foundation
import RayProtos
import RayRPC
import RayServices
import Testing

/// Placement groups on three nodes of 2 CPUs each (the head, zone=b, zone=c), started with
/// `ray start`, driven by the integration app's pg-* scenarios.
@Suite(.serialized) struct PlacementGroupTests {
    static let threeNodes = (head: ["--num-cpus", "2"],
                             workers: [["--num-cpus", "2", "--labels", "zone=b"], ["--num-cpus", "2", "--labels", "zone=c"]])

    /// `ray status` once nothing is reserved or used: every CPU free, no bundle resources left.
    static func expectAllFree(_ cluster: TestCluster, cpus: String = "6.0") async throws {
        var status = ""
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            status = try await TestCluster.runRay(["status", "--address", cluster.address], temp: cluster.nodes[0].temp).text
            if status.contains(" 0.0/\(cpus) CPU\n") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(status.contains(" 0.0/\(cpus) CPU\n"), "every CPU is free again on every node: \(status)")
        // No raylet keeps a bundle: their totals are their own again.
        let gcs = try RPCChannel(target: cluster.address)
        let usage = try await gcs.unary(GCSMethods.getAllResourceUsage, Ray_Rpc_GetAllResourceUsageRequest(), options: CallOptions(timeout: .seconds(5)))
        for node in usage.batch {
            #expect(!node.resourcesTotal.keys.contains { $0.contains("_group_") }, "bundle resources left on a node: \(node.resourcesTotal)")
            #expect(node.resourcesAvailable["CPU"] == node.resourcesTotal["CPU"], "\(node)")
        }
    }

    @Test func strategiesPlaceBundlesAsRayDefinesThemAndRemovalFreesEverything() async throws {
        let cluster = try await TestCluster.start(head: Self.threeNodes.head, workers: Self.threeNodes.workers)
        do {
            let run = try await IntegrationApp.run(["pg-strategies"], environment: ["RAY_ADDRESS": cluster.address], timeout: .seconds(180))
            #expect(run.status == 0, "\(run.output)")
            #expect(run.values["strict_spread_state"] == "CREATED")
            #expect(run.int("strict_spread_nodes") == 3, "STRICT_SPREAD: three bundles on three nodes")
            #expect(run.int("found_by_name") == 1)
            #expect(run.int("duplicate_name_refused") == 1)
            #expect(run.int("bundle_task_ok") == 1, "a task in bundle 2 runs on bundle 2's node")
            #expect(run.int("bundle_actor_ok") == 1, "an actor in bundle 1 lives on bundle 1's node")
            #expect(run.int("any_bundle_ok") == 1)
            #expect(run.int("four_infeasible") == 1, "a fourth STRICT_SPREAD bundle: infeasible, still PENDING")
            #expect(run.int("four_message_ok") == 1)
            #expect(run.int("four_not_ready") == 1)
            #expect(run.output.contains("cannot be created: "), "the driver is warned of the infeasible group: \(run.output)")
            #expect(run.values["waiting_task_kind"] == "TaskPlacementGroupRemoved", "\(run.output)")
            #expect(run.values["ready_after_removal_kind"] == "TaskPlacementGroupRemoved", "\(run.output)")
            #expect(run.values["actor_after_removal_kind"] == "ActorPlacementGroupRemoved", "\(run.output)")
            #expect(run.values["removed_actor_kind"] == "ActorDiedError", "removing the group killed its actor: \(run.output)")
            #expect(run.values["removed_state"] == "REMOVED")
            #expect(run.int("strict_pack_nodes") == 1, "STRICT_PACK: one node")
            #expect(run.int("captured_child_same_node") == 1, "a captured child runs in the parent's bundle: \(run.output)")
            #expect(run.int("uncaptured_child_elsewhere") == 1, "a child not captured cannot use the bundle's CPUs: \(run.output)")
            #expect(run.int("pack_nodes") == 2, "PACK: one node full, then a second")
            #expect(run.int("pack_most_on_one") == 2)
            #expect(run.values["empty_kind"] == "RaySystemError")
            #expect(run.values["zero_kind"] == "RaySystemError")
            #expect(run.values["negative_kind"] == "RaySystemError")
            #expect(run.int("groups_listed") == 4, "the four groups made, none from the bad input")
            try await Self.expectAllFree(cluster)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func twoGroupsRacingForTheSameCapacityGetItInTurn() async throws {
        let cluster = try await TestCluster.start(head: Self.threeNodes.head, workers: Self.threeNodes.workers)
        do {
            let run = try await IntegrationApp.run(["pg-race"], environment: ["RAY_ADDRESS": cluster.address], timeout: .seconds(120))
            #expect(run.status == 0, "\(run.output)")
            #expect(run.int("one_created") == 1)
            #expect(run.int("other_pending") == 1, "the second group waits, all or nothing: \(run.output)")
            #expect(run.int("other_no_resources") == 1)
            #expect(run.int("other_created_after_removal") == 1)
            try await Self.expectAllFree(cluster)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func aRayletKilledUnderABundleReschedulesItsGroups() async throws {
        let fastChecks = ["RAY_health_check_period_ms": "200", "RAY_health_check_failure_threshold": "3",
                          "RAY_health_check_timeout_ms": "500"]
        let cluster = try await TestCluster.start(head: Self.threeNodes.head, workers: Self.threeNodes.workers, headEnvironment: fastChecks)
        do {
            let app = try IntegrationApp.Running(["pg-reschedule"], environment: ["RAY_ADDRESS": cluster.address])
            _ = try await app.value("ready", within: .seconds(60))
            let doomed = try #require(TestCluster.recordedPIDs(in: cluster.nodes[1].temp, role: "raylet").first)
            kill(doomed, SIGKILL)
            _ = try await app.value("waiting_for_node", within: .seconds(30))
            try await cluster.addNode(["--num-cpus", "2"])
            let run = try await app.finish(timeout: .seconds(90))
            #expect(run.status == 0, "\(run.output)")
            #expect(run.int("actor_on_b") == 1)
            #expect(run.int("strict_rescheduling") == 1)
            #expect(run.int("strict_kept_others") == 2, "the bundles on live nodes stay where they are")
            #expect(run.int("spread_recreated_on_live") == 1, "SPREAD is placed again on the remaining capacity")
            #expect(run.values["actor_kind"] == "ActorDiedError", "\(run.output)")
            #expect(run.int("strict_recreated_on_new") == 1, "STRICT_SPREAD's lost bundle went to the node that joined: \(run.output)")
            try await Self.expectAllFree(cluster)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }
}
