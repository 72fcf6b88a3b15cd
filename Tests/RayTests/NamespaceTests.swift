import Foundation
import Testing

/// Two network namespaces joined by a veth pair: one host each, so nothing between the nodes can
/// lean on a shared loopback or abstract Unix sockets. Torn down (processes, then namespaces) by
/// `close()`.
final class TwoHosts: @unchecked Sendable {
    let names: [String]
    let addresses: [String]
    /// The two ends of the veth pair, `veths[i]` in host `i`.
    let veths: [String]

    init() throws {
        let tag = String(UInt32.random(in: 0..<0xFFFF_FFFF), radix: 16)
        let subnet = Int.random(in: 1...250)
        names = ["sr-a-\(tag)", "sr-b-\(tag)"]
        addresses = ["10.231.\(subnet).1", "10.231.\(subnet).2"]
        let veth = ["sra\(tag)", "srb\(tag)"]
        veths = veth
        do {
            for name in names { try Self.ip(["netns", "add", name]) }
            try Self.ip(["link", "add", veth[0], "type", "veth", "peer", "name", veth[1]])
            for i in 0..<2 {
                try Self.ip(["link", "set", veth[i], "netns", names[i]])
                try Self.ip(["-n", names[i], "addr", "add", "\(addresses[i])/24", "dev", veth[i]])
                try Self.ip(["-n", names[i], "link", "set", veth[i], "up"])
                try Self.ip(["-n", names[i], "link", "set", "lo", "up"])
            }
        } catch {
            close()
            throw error
        }
    }

    /// Runs a command in host `i`'s namespace: `ip netns exec <name>` execs it.
    func launcher(_ i: Int) -> [String] { ["/usr/sbin/ip", "netns", "exec", names[i]] }

    /// Deletes the namespaces (the veth pair goes with them).
    func close() {
        for name in names { try? Self.ip(["netns", "del", name]) }
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    static func ip(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw Failure(description: "ip \(arguments.joined(separator: " ")) failed: \(text)")
        }
    }
}

@Suite(.serialized) struct NamespaceTests {
    /// A head (GCS and raylet) on host 0 and a zone=b node on host 1, each binding its host's address;
    /// `body` gets the hosts and the GCS address. Stopped (processes checked by pid, then the
    /// namespaces) however `body` ends.
    static func withTwoHostCluster(headEnvironment: [String: String] = [:],
                                   _ body: (TwoHosts, String) async throws -> Void) async throws {
        let hosts = try TwoHosts()
        let temps = [TestCluster.freshTemp(), TestCluster.freshTemp()]
        var daemons: [pid_t] = []
        do {
            let head = try await TestCluster.runRay(
                ["start", "--head", "--port", "0", "--node-ip-address", hosts.addresses[0], "--num-cpus", "2"],
                temp: temps[0], environment: headEnvironment, launcher: hosts.launcher(0))
            let address = try #require(head.text.split(separator: "\n").first { $0.contains("GCS address:") }?
                .split(separator: " ").last.map(String.init), "\(head.text)")
            #expect(address.hasPrefix(hosts.addresses[0] + ":"))
            let joined = try await TestCluster.runRay(
                ["start", "--address", address, "--node-ip-address", hosts.addresses[1], "--num-cpus", "2", "--labels", "zone=b"],
                temp: temps[1], launcher: hosts.launcher(1))
            #expect(joined.status == 0, "\(joined.text)")
            daemons = temps.flatMap { TestCluster.recordedPIDs(in: $0) }
            try await body(hosts, address)
        } catch {
            await Self.stop(temps, hosts, daemons)
            throw error
        }
        await Self.stop(temps, hosts, daemons)
    }

    @Test func aDriverOnOneHostRunsTasksAnActorAndMovesObjectsOnAnother() async throws {
        try await Self.withTwoHostCluster { hosts, address in
            let app = try IntegrationApp.Running(
                ["netns"], environment: ["RAY_ADDRESS": address, "RAY_NODE_IP_ADDRESS": hosts.addresses[0]],
                launcher: hosts.launcher(0))
            let run = try await app.finish(timeout: .seconds(120))
            #expect(run.status == 0, "\(run.output)")
            #expect(run.values["driver_address"] == hosts.addresses[0])
            #expect(run.values["other_address"] == hosts.addresses[1])
            #expect(run.int("tasks_on_other") == 3, "the tasks ran on the other host")
            #expect(run.int("actor_on_other") == 1)
            #expect(run.int("pulled_ok") == 1, "256 MiB made on the other host arrived intact")
            #expect(run.int("pushed_ok") == 1, "256 MiB put here arrived intact at a task there")
        }
    }

    /// The link between the hosts goes down with an actor call and a task in flight on the other
    /// host: nothing closes their connections, so only the GCS's health checks can tell. Both fail
    /// naming the node within seconds of it being marked dead, not at their calls' deadlines.
    @Test func callsInFlightToAHostCutOffFailOnceItsNodeIsMarkedDead() async throws {
        let fastChecks = ["RAY_health_check_period_ms": "200", "RAY_health_check_failure_threshold": "3",
                          "RAY_health_check_timeout_ms": "500"]
        try await Self.withTwoHostCluster(headEnvironment: fastChecks) { hosts, address in
            let app = try IntegrationApp.Running(
                ["partition"], environment: ["RAY_ADDRESS": address, "RAY_NODE_IP_ADDRESS": hosts.addresses[0]],
                launcher: hosts.launcher(0))
            _ = try await app.value("ready", within: .seconds(120))
            try TwoHosts.ip(["-n", hosts.names[1], "link", "set", hosts.veths[1], "down"])
            let run = try await app.finish(timeout: .seconds(60))
            #expect(run.status == 0, "\(run.output)")
            #expect(run.values["task_kind"] == "WorkerCrashedError", "\(run.output)")
            #expect(run.int("task_names_node") == 1, "\(run.output)")
            #expect(run.values["actor_kind"] == "ActorDiedError", "\(run.output)")
            #expect(run.int("actor_names_node") == 1, "\(run.output)")
            // Marked dead after 3 checks 200 ms apart (each up to 500 ms): far below the 24 h deadline.
            #expect((run.int("task_failed_ms") ?? .max) < 20_000 && (run.int("actor_failed_ms") ?? .max) < 20_000, "\(run.output)")
        }
    }

    static func stop(_ temps: [URL], _ hosts: TwoHosts, _ daemons: [pid_t]) async {
        for i in [1, 0] {
            let stopped = try? await TestCluster.runRay(["stop"], temp: temps[i], launcher: hosts.launcher(i))
            #expect(stopped?.status == 0, "ray stop on host \(i): \(stopped?.text ?? "did not run")")
        }
        for pid in daemons {
            #expect(!processIsAlive(pid), "daemon \(pid) outlived ray stop")
            if processIsAlive(pid) { kill(pid, SIGKILL) }
        }
        hosts.close()
        for temp in temps { try? FileManager.default.removeItem(at: temp) }
    }
}
