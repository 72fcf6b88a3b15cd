// Placement-group scenarios on a cluster of three nodes of 2 CPUs each (Tests/RayTests/
// PlacementGroupTests.swift starts them with `ray start`; the head, a zone=b node and a zone=c node).
import Distributed
@preconcurrency import Glibc
import Foundation
@_spi(RayTesting) import Ray

/// Where this task runs and where a child it starts (with no strategy of its own) runs.
let parentAndChild = RemoteFunction("parentAndChild") { () async throws -> [String] in
    let child = try await whereAmI.remote().get(timeout: .seconds(30))
    return [Ray.currentNodeID?.hex ?? "", child]
}

let placementGroupFunctions: [any AnyRemoteFunction] = [parentAndChild]

enum PlacementGroupScenarios {
    static func report(_ key: String, _ value: some CustomStringConvertible) { IntegrationApp.report(key, value) }

    /// Waits until the group's info passes `condition` (polling the GCS), or fails after `timeout`.
    static func waitFor(_ ray: Ray, _ group: PlacementGroup, _ what: String, timeout: Duration = .seconds(30),
                        _ condition: (PlacementGroupInfo) -> Bool) async throws -> PlacementGroupInfo {
        let deadline = ContinuousClock.now + timeout
        while true {
            let info = try await ray.placementGroupInfo(group)
            if condition(info) { return info }
            guard ContinuousClock.now < deadline else { throw Failed("placement group \(group) never \(what): \(info)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    static func errorKind(_ body: () async throws -> Void) async -> String {
        do {
            try await body()
            return "none"
        } catch let error as RayTaskError {
            return error.kind.rawValue
        } catch let error as RayError {
            return error.kind.rawValue
        } catch {
            return "\(type(of: error))"
        }
    }

    static func run(_ scenario: String, _ arguments: [String], ray: Ray) async throws -> Bool {
        switch scenario {
        case "pg-strategies": try await strategies(ray)
        case "pg-race": try await race(ray)
        case "pg-reschedule": try await reschedule(ray)
        default: return false
        }
        return true
    }

    static func strategies(_ ray: Ray) async throws {
        let (head, zoneB, zoneC) = try await threeNodes(ray)

        // STRICT_SPREAD: three bundles on three distinct nodes.
        let spread = try await ray.placementGroup([["CPU": 1], ["CPU": 1], ["CPU": 1]], strategy: .strictSpread, name: "shards")
        _ = try await spread.ready().get(timeout: .seconds(30))
        let spreadInfo = try await ray.placementGroupInfo(spread)
        report("strict_spread_state", spreadInfo.state.rawValue)
        report("strict_spread_nodes", Set(spreadInfo.bundleNodes.compactMap { $0 }).count)
        report("found_by_name", try await ray.getPlacementGroup(named: "shards") == spread ? 1 : 0)
        let kind = await errorKind { _ = try await ray.placementGroup([["CPU": 0.1]], name: "shards") }
        report("duplicate_name_refused", kind == "RaySystemError" ? 1 : 0)

        // A task in bundle 2 runs on that bundle's node; an actor in bundle 1 lives on its node.
        let bundle2 = try requireNode(spreadInfo.bundleNodes[2])
        let ran = try await whereAmI.options(scheduling: .placementGroup(spread, bundleIndex: 2)).remote().get(timeout: .seconds(30))
        report("bundle_task_ok", ran == bundle2.hex ? 1 : 0)
        let actor = try await ray.actor(Locator.self, args: 0, options: ActorOptions(numCPUs: 1, scheduling: .placementGroup(spread, bundleIndex: 1)))
        report("bundle_actor_ok", try await actor.node() == spreadInfo.bundleNodes[1]?.hex ? 1 : 0)
        // Any bundle: it runs on one of the group's nodes.
        let anywhere = try await whereAmI.options(scheduling: .placementGroup(spread)).remote().get(timeout: .seconds(30))
        report("any_bundle_ok", spreadInfo.bundleNodes.contains { $0?.hex == anywhere } ? 1 : 0)

        // A fourth bundle: no three-node cluster can hold four strictly spread bundles.
        let four = try await ray.placementGroup(Array(repeating: ["CPU": 0.1], count: 4), strategy: .strictSpread)
        let fourInfo = try await waitFor(ray, four, "was reported infeasible", timeout: .seconds(10)) { $0.schedulingState == .infeasible }
        report("four_infeasible", fourInfo.state == .pending ? 1 : 0)
        report("four_message_ok", fourInfo.message.contains("needs 4 distinct nodes") ? 1 : 0)
        report("four_not_ready", try await four.wait(timeout: .milliseconds(300)) ? 0 : 1)
        let waiting = whereAmI.options(scheduling: .placementGroup(four, bundleIndex: 0)).remote()
        try await ray.removePlacementGroup(four)
        report("waiting_task_kind", await errorKind { _ = try await waiting.get(timeout: .seconds(30)) })
        report("ready_after_removal_kind", await errorKind { _ = try await four.ready().get(timeout: .seconds(10)) })
        report("actor_after_removal_kind", await errorKind {
            _ = try await ray.actor(Locator.self, args: 0, options: ActorOptions(scheduling: .placementGroup(four, bundleIndex: 0)))
        })

        // Removing a group kills its actor and frees its bundles (soon after: removal is asynchronous, as Ray's).
        try await ray.removePlacementGroup(spread)
        var removedKind = "none"
        let removedBy = ContinuousClock.now + .seconds(10)
        while removedKind == "none", ContinuousClock.now < removedBy {
            removedKind = await errorKind { _ = try await actor.node() }
            try await Task.sleep(for: .milliseconds(20))
        }
        report("removed_actor_kind", removedKind)
        report("removed_state", try await ray.placementGroupInfo(spread).state.rawValue)

        // STRICT_PACK: both bundles on one node.
        let packed = try await ray.placementGroup([["CPU": 1], ["CPU": 1]], strategy: .strictPack)
        _ = try await packed.ready().get(timeout: .seconds(30))
        let packedInfo = try await ray.placementGroupInfo(packed)
        report("strict_pack_nodes", Set(packedInfo.bundleNodes.compactMap { $0 }).count)
        // The bundle holds the node's 2 CPUs: a child of a task in it runs there only if captured.
        let captured = try await parentAndChild.options(scheduling: .placementGroup(packed, bundleIndex: 0, captureChildTasks: true))
            .remote().get(timeout: .seconds(30))
        report("captured_child_same_node", captured[0] == captured[1] && captured[0] == packedInfo.bundleNodes[0]?.hex ? 1 : 0)
        let free = try await parentAndChild.options(scheduling: .placementGroup(packed, bundleIndex: 0)).remote().get(timeout: .seconds(30))
        report("uncaptured_child_elsewhere", free[0] != free[1] ? 1 : 0)
        try await ray.removePlacementGroup(packed)

        // PACK: three one-CPU bundles on 2-CPU nodes fill one node, then use a second.
        let pack = try await ray.placementGroup([["CPU": 1], ["CPU": 1], ["CPU": 1]], strategy: .pack)
        _ = try await pack.ready().get(timeout: .seconds(30))
        let counts = Dictionary(grouping: try await ray.placementGroupInfo(pack).bundleNodes.compactMap { $0 }, by: { $0 }).mapValues(\.count)
        report("pack_nodes", counts.count)
        report("pack_most_on_one", counts.values.max() ?? 0)
        try await ray.removePlacementGroup(pack)

        // Bad input: clear errors, nothing created.
        report("empty_kind", await errorKind { _ = try await ray.placementGroup([]) })
        report("zero_kind", await errorKind { _ = try await ray.placementGroup([["CPU": 0]]) })
        report("negative_kind", await errorKind { _ = try await ray.placementGroup([["CPU": -1]]) })
        report("groups_listed", try await ray.placementGroups().count)
        _ = (head, zoneB, zoneC)
    }

    static func race(_ ray: Ray) async throws {
        // Each group wants all six CPUs: one is created, the other waits until the first is removed.
        async let a = ray.placementGroup([["CPU": 2], ["CPU": 2], ["CPU": 2]], strategy: .spread)
        async let b = ray.placementGroup([["CPU": 2], ["CPU": 2], ["CPU": 2]], strategy: .spread)
        let groups = try await [a, b]
        let start = ContinuousClock.now
        var created: PlacementGroup?
        while created == nil, ContinuousClock.now - start < .seconds(30) {
            for group in groups where try await ray.placementGroupInfo(group).state == .created { created = group }
            try await Task.sleep(for: .milliseconds(20))
        }
        guard let winner = created else { throw Failed("neither group was created") }
        let loser = groups.first { $0 != winner }!
        try await Task.sleep(for: .seconds(1))
        let loserInfo = try await ray.placementGroupInfo(loser)
        report("one_created", try await ray.placementGroupInfo(winner).state == .created ? 1 : 0)
        report("other_pending", loserInfo.state == .pending ? 1 : 0)
        report("other_no_resources", loserInfo.schedulingState == .noResources ? 1 : 0)
        try await ray.removePlacementGroup(winner)
        _ = try await loser.ready().get(timeout: .seconds(30))
        report("other_created_after_removal", try await ray.placementGroupInfo(loser).state == .created ? 1 : 0)
        try await ray.removePlacementGroup(loser)
    }

    static func reschedule(_ ray: Ray) async throws {
        let (_, zoneB, _) = try await threeNodes(ray)
        // SPREAD may share nodes once one is gone; STRICT_SPREAD of three may not.
        let spread = try await ray.placementGroup(Array(repeating: ["CPU": 0.5], count: 3), strategy: .spread)
        let strict = try await ray.placementGroup(Array(repeating: ["CPU": 0.5], count: 3), strategy: .strictSpread)
        _ = try await spread.ready().get(timeout: .seconds(30))
        _ = try await strict.ready().get(timeout: .seconds(30))
        let strictInfo = try await ray.placementGroupInfo(strict)
        guard let onB = strictInfo.bundleNodes.firstIndex(of: zoneB) else { throw Failed("no bundle on zone=b: \(strictInfo)") }
        let actor = try await ray.actor(Locator.self, args: 0, options: ActorOptions(scheduling: .placementGroup(strict, bundleIndex: onB)))
        report("actor_on_b", try await actor.node() == zoneB.hex ? 1 : 0)
        report("doomed_node", zoneB.hex)
        report("ready", 1)
        // The test kills the zone=b raylet.
        let deadline = ContinuousClock.now + .seconds(30)
        while try await ray.nodes().contains(where: { $0.id == zoneB && $0.isAlive }) {
            guard ContinuousClock.now < deadline else { throw Failed("zone=b was never marked dead") }
            try await Task.sleep(for: .milliseconds(50))
        }
        let strictRescheduling = try await waitFor(ray, strict, "went RESCHEDULING") { $0.state == .rescheduling }
        report("strict_rescheduling", 1)
        report("strict_kept_others", strictRescheduling.bundleNodes.filter { $0 != nil }.count)
        let spreadAgain = try await waitFor(ray, spread, "was created again") { $0.state == .created }
        let alive = Set(try await ray.nodes().filter(\.isAlive).map(\.id))
        report("spread_recreated_on_live", spreadAgain.bundleNodes.allSatisfy { $0.map(alive.contains) ?? false } ? 1 : 0)
        report("actor_kind", await errorKind { _ = try await actor.node() })
        report("waiting_for_node", 1)
        // The test starts a fourth node: the strict group's lost bundle goes there.
        let strictAgain = try await waitFor(ray, strict, "was created again", timeout: .seconds(60)) { $0.state == .created }
        let nodes = try await ray.nodes()
        let newest = nodes.filter(\.isAlive).last?.id
        report("strict_recreated_on_new", strictAgain.bundleNodes[onB] == newest && newest != zoneB ? 1 : 0)
        try await ray.removePlacementGroup(spread)
        try await ray.removePlacementGroup(strict)
    }

    /// The head, the zone=b node and the zone=c node.
    static func threeNodes(_ ray: Ray) async throws -> (NodeID, NodeID, NodeID) {
        let nodes = try await ray.nodes().filter(\.isAlive)
        guard let head = nodes.first(where: \.isHead), let b = nodes.first(where: { $0.labels["zone"] == "b" }),
              let c = nodes.first(where: { $0.labels["zone"] == "c" })
        else { throw Failed("expected a head, a zone=b node and a zone=c node, got \(nodes)") }
        return (head.id, b.id, c.id)
    }
}

/// The node, or a failure naming what was missing.
func requireNode(_ node: NodeID?) throws -> NodeID {
    guard let node else { throw Failed("a bundle has no node") }
    return node
}
