// Scenarios on a cluster of several nodes (Tests/RayTests/MultiNodeTests.swift starts the nodes with
// `ray start` and runs these as the driver, with RAY_ADDRESS set).
import Distributed
@preconcurrency import Glibc
import Foundation
@_spi(RayTesting) import Ray

/// The node the task ran on, in hex.
let whereAmI = RemoteFunction("whereAmI") { () -> String in Ray.currentNodeID?.hex ?? "" }
/// The executable the task's worker runs (the working-directory test: another node's copy).
let whereFrom = RemoteFunction("whereFrom") { () -> [String] in
    [Ray.currentNodeID?.hex ?? "", (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""]
}
/// Sleeps, then says where it ran (long enough that tasks submitted together overlap).
let sleepThenWhere = RemoteFunction("sleepThenWhere") { (milliseconds: Int) -> String in
    try await Task.sleep(for: .milliseconds(milliseconds))
    return Ray.currentNodeID?.hex ?? ""
}
/// Adds 1 to a Counter (so its caller knows it runs), then sleeps; returns its node.
let signalThenSleep = RemoteFunction("signalThenSleep") { (counter: Counter, milliseconds: Int) async throws -> String in
    _ = try await counter.add(1)
    try await Task.sleep(for: .milliseconds(milliseconds))
    return Ray.currentNodeID?.hex ?? ""
}
/// Calls a Counter from wherever this task runs: [the task's node, the count after adding n].
let addFromAnotherNode = RemoteFunction("addFromAnotherNode") { (counter: Counter, n: Int) async throws -> [String] in
    let count = try await counter.add(n)
    return [Ray.currentNodeID?.hex ?? "", String(count)]
}

distributed actor Locator: RayActor {
    init(actorSystem: RayActorSystem, args: Int) { self.actorSystem = actorSystem }
    distributed func node() -> String { Ray.currentNodeID?.hex ?? "" }
}

/// The checksum of the bytes (an object pulled to wherever this runs), and the node it ran on.
let checksumWhere = RemoteFunction("checksumWhere") { (bytes: [UInt8]) -> ChecksumAt in
    ChecksumAt(sum: sparseChecksum(bytes), node: Ray.currentNodeID?.hex ?? "")
}
struct ChecksumAt: Codable, Sendable {
    var sum: UInt64
    var node: String
}

let multiNodeFunctions: [any AnyRemoteFunction] = [whereAmI, whereFrom, sleepThenWhere, addFromAnotherNode, checksumWhere, signalThenSleep]

enum MultiNodeScenarios {
    static func report(_ key: String, _ value: some CustomStringConvertible) { IntegrationApp.report(key, value) }

    /// Node IDs by what the test started them with: the head, a node labelled zone=b, a node with
    /// the only `accel` resource (zone=c).
    static func nodes(_ ray: Ray) async throws -> (head: NodeID, zoneB: NodeID, accel: NodeID) {
        let nodes = try await ray.nodes().filter(\.isAlive)
        guard let head = nodes.first(where: \.isHead), let b = nodes.first(where: { $0.labels["zone"] == "b" }),
              let accel = nodes.first(where: { $0.resources["accel"] != nil })
        else { throw Failed("expected a head, a zone=b node and an accel node, got \(nodes)") }
        return (head.id, b.id, accel.id)
    }

    static func run(_ scenario: String, _ arguments: [String], ray: Ray) async throws -> Bool {
        switch scenario {
        case "exe-paths":
            // Tasks that need the `far` resource (only a second node has it): where their workers' binary is.
            let rows = try await ray.get((0..<4).map { _ in whereFrom.options(numCPUs: 0, resources: ["far": 1]).remote() })
            for row in Set(rows.map { $0.joined(separator: " ") }).sorted() { report("far_task", row) }
            report("driver_exe", (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
            return true

        case "multinode":
            let nodes = try await ray.nodes()
            report("nodes_alive", nodes.filter(\.isAlive).count)
            report("node_labels_have_ids", nodes.allSatisfy { $0.labels["ray.io/node-id"] == $0.id.hex } ? 1 : 0)
            let (head, zoneB, accel) = try await Self.nodes(ray)
            report("driver_on_head", ray.nodeID == head ? 1 : 0)

            // SPREAD: three long tasks at once, one on each node.
            let spread = (0..<3).map { _ in sleepThenWhere.options(scheduling: .spread).remote(1500) }
            let spreadNodes = try await ray.get(spread, timeout: .seconds(60))
            report("spread_distinct_nodes", Set(spreadNodes).count)

            // Default (hybrid): one small task at a time stays on the driver's node.
            var local = 0
            for _ in 0..<5 where try await whereAmI.remote().get(timeout: .seconds(30)) == head.hex { local += 1 }
            report("hybrid_local", local)

            // A label selector picks the only node that matches; a custom resource the only node with it.
            report("label_b_ok", try await whereAmI.options(labelSelector: ["zone": "b"]).remote().get(timeout: .seconds(30)) == zoneB.hex ? 1 : 0)
            report("label_not_in_ok", try await whereAmI.options(labelSelector: ["zone": "!in(b,c)"]).remote().get(timeout: .seconds(30)) == head.hex ? 1 : 0)
            report("accel_ok", try await whereAmI.options(numCPUs: 1, resources: ["accel": 1]).remote().get(timeout: .seconds(30)) == accel.hex ? 1 : 0)

            // Node affinity: hard to a live node runs there; hard to a node that does not exist fails
            // clearly; soft to it runs anyway.
            report("affinity_ok", try await whereAmI.options(scheduling: .nodeAffinity(zoneB, soft: false)).remote().get(timeout: .seconds(30)) == zoneB.hex ? 1 : 0)
            let nowhere = NodeID.random()
            do {
                _ = try await whereAmI.options(scheduling: .nodeAffinity(nowhere, soft: false)).remote().get(timeout: .seconds(30))
                throw Failed("a task with hard affinity to a node that does not exist ran")
            } catch let error as RayTaskError {
                report("hard_affinity_kind", error.kind.rawValue)
                report("hard_affinity_message_ok", error.message.contains("soft=False") ? 1 : 0)
            }
            report("soft_affinity_ran", try await whereAmI.options(scheduling: .nodeAffinity(nowhere, soft: true)).remote().get(timeout: .seconds(30)).isEmpty ? 0 : 1)

            // An actor placed on the zone=b node, called from a task on the accel node.
            let counter = try await ray.actor(Counter.self, args: 5, options: ActorOptions(labelSelector: ["zone": "b"]))
            let locator = try await ray.actor(Locator.self, args: 0, options: ActorOptions(scheduling: .nodeAffinity(accel, soft: false)))
            report("locator_on_accel", try await locator.node() == accel.hex ? 1 : 0)
            let called = try await addFromAnotherNode.options(numCPUs: 1, resources: ["accel": 1]).remote(counter, 2).get(timeout: .seconds(30))
            report("cross_node_call_from_accel", called[0] == accel.hex ? 1 : 0)
            report("cross_node_call_count", called[1])
            report("counter_after", try await counter.current())
            return true

        case "objects-across":
            try await objectsAcross(arguments, ray: ray)
            report("released", 1)
            try await Task.sleep(for: .seconds(Int(ProcessInfo.processInfo.environment["APP_HOLD_SECONDS"] ?? "0") ?? 0))
            return true

        case "node-death":
            // An actor, an object and a long task on the zone=b node; the test SIGKILLs its raylet.
            let nodes = try await ray.nodes().filter(\.isAlive)
            guard let doomed = nodes.first(where: { $0.labels["zone"] == "b" }) else { throw Failed("no zone=b node in \(nodes)") }
            let counter = try await ray.actor(Counter.self, args: 1, options: ActorOptions(labelSelector: ["zone": "b"]))
            report("actor_first_call", try await counter.add(1))
            let onlyThere = makeBytes.options(labelSelector: ["zone": "b"]).remote(1 << 20)
            _ = await ray.wait([onlyThere], numReturns: 1, timeout: .seconds(30))
            // Made there and copied to the zone=c node (a task there reads it): the owner reads the
            // copy that is left once the node is gone.
            let twoCopies = makeBytes.options(labelSelector: ["zone": "b"]).remote(1 << 20)
            let readThere = try await checksumWhere.options(labelSelector: ["zone": "c"]).remote(twoCopies).get(timeout: .seconds(30))
            let zoneC = nodes.first { $0.labels["zone"] == "c" }?.id.hex
            report("copied_to_c", zoneC != nil && readThere.node == zoneC ? 1 : 0)
            let running = sleepThenWhere.options(labelSelector: ["zone": "b"]).remote(120_000)
            try await Task.sleep(for: .milliseconds(500))
            report("doomed_node", doomed.id.hex)
            report("ready", 1)
            let start = ContinuousClock.now
            while try await ray.nodes().first(where: { $0.id == doomed.id })?.isAlive != false {
                guard ContinuousClock.now - start < .seconds(30) else { throw Failed("node \(doomed.id.hex) was not marked dead within 30 s") }
                try await Task.sleep(for: .milliseconds(20))
            }
            report("marked_dead", 1)
            do {
                _ = try await counter.add(1)
                throw Failed("an actor on a dead node answered")
            } catch let error as RayError {
                report("actor_kind", error.kind.rawValue)
                report("actor_names_node", error.message.contains(doomed.id.hex) ? 1 : 0)
            } catch let error as RayTaskError {
                report("actor_kind", error.kind.rawValue)
                report("actor_names_node", error.message.contains(doomed.id.hex) ? 1 : 0)
            }
            do {
                _ = try await onlyThere.getBuffer(timeout: .seconds(30))
                throw Failed("an object whose only copy was on a dead node was read")
            } catch let error as RayError {
                report("object_kind", error.kind.rawValue)
                report("object_names_node", error.message.contains(doomed.id.hex) ? 1 : 0)
            }
            let survivor = try await twoCopies.getBuffer(timeout: .seconds(30))
            report("survivor_ok", survivor.withUnsafeBytes { sparseChecksum($0.bindMemory(to: UInt8.self)) } == readThere.sum ? 1 : 0)
            do {
                _ = try await running.get(timeout: .seconds(30))
                throw Failed("a task on a dead node finished")
            } catch let error as RayTaskError {
                report("task_kind", error.kind.rawValue)
                report("task_names_node", error.message.contains(doomed.id.hex) ? 1 : 0)
            }
            // The cluster goes on without it.
            report("after_ok", try await whereAmI.remote().get(timeout: .seconds(30)).isEmpty ? 0 : 1)
            return true

        case "partition":
            // An actor call and a task in flight on the zone=b host when the test cuts its link:
            // both must fail once the GCS marks the node dead, not when a connection times out.
            let nodes = try await ray.nodes().filter(\.isAlive)
            guard let other = nodes.first(where: { $0.labels["zone"] == "b" }) else { throw Failed("no zone=b node in \(nodes)") }
            let counter = try await ray.actor(Counter.self, args: 0, options: ActorOptions(labelSelector: ["zone": "b"]))
            report("actor_first_call", try await counter.add(1))
            // Ready once the task runs there (its worker may take seconds to start on a loaded host):
            // a task still waiting for a lease when the link goes would wait for a zone=b node forever.
            let running = signalThenSleep.options(labelSelector: ["zone": "b"]).remote(counter, 600_000)
            let deadline = ContinuousClock.now + .seconds(60)
            while try await counter.add(0) < 2 {
                guard ContinuousClock.now < deadline else {
                    let outcome: String
                    do { outcome = "it returned \(try await running.get(timeout: .seconds(1)))" } catch { outcome = "\(error)" }
                    throw Failed("the task on zone=b did not start in 60 s: \(outcome)")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            report("ready", 1)
            let start = ContinuousClock.now
            let call = Task { () -> Result<[UInt64], any Error> in
                do { return .success(try await counter.nap(600_000)) } catch { return .failure(error) }
            }
            do {
                _ = try await running.get(timeout: .seconds(120))
                report("task_kind", "finished")
            } catch let error as RayTaskError {
                report("task_kind", error.kind.rawValue)
                report("task_names_node", error.message.contains(other.id.hex) ? 1 : 0)
            }
            report("task_failed_ms", (ContinuousClock.now - start).components.seconds * 1000)
            switch await call.value {
            case .success: report("actor_kind", "answered")
            case .failure(let error as RayTaskError):
                report("actor_kind", error.kind.rawValue)
                report("actor_names_node", error.message.contains(other.id.hex) ? 1 : 0)
            case .failure(let error as RayError): report("actor_kind", error.kind.rawValue)
            case .failure(let error): report("actor_kind", "\(error)")
            }
            report("actor_failed_ms", (ContinuousClock.now - start).components.seconds * 1000)
            return true

        case "netns":
            // The driver's node and a zone=b node in another network namespace: tasks, an actor
            // and objects both ways cross the veth between them.
            let nodes = try await ray.nodes().filter(\.isAlive)
            guard let other = nodes.first(where: { $0.labels["zone"] == "b" }) else { throw Failed("no zone=b node in \(nodes)") }
            report("driver_address", nodes.first { $0.id == ray.nodeID }?.address ?? "")
            report("other_address", other.address)
            let ran = try await ray.get((0..<3).map { _ in whereAmI.options(labelSelector: ["zone": "b"]).remote() }, timeout: .seconds(60))
            report("tasks_on_other", ran.filter { $0 == other.id.hex }.count)
            let locator = try await ray.actor(Locator.self, args: 0, options: ActorOptions(labelSelector: ["zone": "b"]))
            report("actor_on_other", try await locator.node() == other.id.hex ? 1 : 0)
            let size = 256 << 20
            let expected = sparseChecksum(pattern(size))
            let made = makeBytes.options(labelSelector: ["zone": "b"]).remote(size)
            let bytes = try await made.getBuffer(timeout: .seconds(120))
            report("pulled_ok", bytes.withUnsafeBytes { sparseChecksum($0.bindMemory(to: UInt8.self)) } == expected ? 1 : 0)
            let put = try await ray.put(pattern(size))
            let there = try await checksumWhere.options(labelSelector: ["zone": "b"]).remote(put).get(timeout: .seconds(120))
            report("pushed_ok", there.sum == expected && there.node == other.id.hex ? 1 : 0)
            return true

        case "infeasible-then-join":
            // Needs {"late": 1}, which no node has: it waits (the driver is warned) until the test
            // adds a node that has it.
            let late = whereAmI.options(numCPUs: 0, resources: ["late": 1]).remote()
            do {
                _ = try await late.get(timeout: .seconds(2))
                throw Failed("a task needing a resource no node had ran")
            } catch let error as RayError where error.kind == .getTimeout {
                report("late_waiting", 1)
            }
            let ranOn = try await late.get(timeout: .seconds(60))
            let nodes = try await ray.nodes()
            report("late_ran_on_new_node", nodes.first { $0.id.hex == ranOn }?.resources["late"] == 1 ? 1 : 0)
            return true

        default:
            return false
        }
    }

    /// A big object made on the accel node, read by the driver on the head and by a task on the
    /// zone=b node: both pulls must arrive intact. Its refs go when this returns.
    static func objectsAcross(_ arguments: [String], ray: Ray) async throws {
        let (_, zoneB, _) = try await Self.nodes(ray)
        let size = Int(arguments.dropFirst().first ?? "") ?? 64 * 1024 * 1024
        let expected = sparseChecksum(pattern(size))
        let big = makeBytes.options(numCPUs: 1, resources: ["accel": 1]).remote(size)
        let start = ContinuousClock.now
        let bytes = try await big.getBuffer(timeout: .seconds(120))
        report("driver_pull_ms", Int((ContinuousClock.now - start) / .milliseconds(1)))
        report("driver_checksum_ok", bytes.withUnsafeBytes { sparseChecksum($0.bindMemory(to: UInt8.self)) } == expected ? 1 : 0)
        let onB = checksumWhere.options(labelSelector: ["zone": "b"]).remote(big)
        let result = try await onB.get(timeout: .seconds(120))
        report("task_checksum_ok", result.sum == expected ? 1 : 0)
        report("task_ran_on_b", result.node == zoneB.hex ? 1 : 0)
        // Held until the test looked at every node's store: the object is on all three now.
        report("holding", 1)
        try await Task.sleep(for: .milliseconds(Int(ProcessInfo.processInfo.environment["APP_LOOK_MS"] ?? "0") ?? 0))
    }
}
