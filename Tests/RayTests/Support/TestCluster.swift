import Foundation
import Testing

/// A cluster of several nodes on this machine, each started with the built `ray start` at an
/// address of its own (the head at 127.0.0.1, the others at 127.0.0.2, 127.0.0.3, …) and a temp dir
/// of its own, so `ray stop` there stops that node only. `stop()` runs `ray stop` on every node and
/// checks by pid that none of their processes, nor the workers they started, outlived it.
final class TestCluster: @unchecked Sendable {
    struct Node {
        let ip: String
        let temp: URL
    }

    let address: String
    private(set) var nodes: [Node]

    private init(address: String, head: Node) {
        self.address = address
        nodes = [head]
    }

    /// Starts the head (`ray start --head` with `head`'s flags), then one node per entry of `workers`.
    /// `headEnvironment` goes to the head's daemons (the GCS's `RAY_health_check_*`, say).
    static func start(head: [String] = ["--num-cpus", "2"], workers: [[String]] = [],
                      headEnvironment: [String: String] = [:]) async throws -> TestCluster {
        let temp = freshTemp()
        let output = try await runRay(["start", "--head", "--port", "0", "--node-ip-address", "127.0.0.1"] + head, temp: temp,
                                      environment: headEnvironment)
        guard output.status == 0, let address = output.text.split(separator: "\n").first(where: { $0.contains("GCS address:") })?
            .split(separator: " ").last.map(String.init)
        else { throw ClusterFailure("ray start --head failed:\n\(output.text)") }
        let cluster = TestCluster(address: address, head: Node(ip: "127.0.0.1", temp: temp))
        do {
            for flags in workers { try await cluster.addNode(flags) }
        } catch {
            await cluster.stop()
            throw error
        }
        return cluster
    }

    /// Starts one more node (`ray start --address`) at the next address (or at `ip`).
    @discardableResult
    func addNode(_ flags: [String], ip: String? = nil) async throws -> Node {
        let node = Node(ip: ip ?? "127.0.0.\(nodes.count + 1)", temp: Self.freshTemp())
        nodes.append(node)
        let output = try await Self.runRay(["start", "--address", address, "--node-ip-address", node.ip] + flags, temp: node.temp)
        guard output.status == 0 else { throw ClusterFailure("ray start --address \(address) failed:\n\(output.text)") }
        return node
    }

    /// The pids `ray start` recorded for every node (GCS, raylets).
    var daemonPIDs: [pid_t] { nodes.flatMap { Self.recordedPIDs(in: $0.temp) } }
    var rayletPIDs: [pid_t] { nodes.flatMap { Self.recordedPIDs(in: $0.temp, role: "raylet") } }

    /// `ray stop` on every node, the head last; then nothing the cluster started may be alive.
    func stop() async {
        let daemons = daemonPIDs
        let raylets = rayletPIDs
        for node in nodes.reversed() {
            let output = try? await Self.runRay(["stop"], temp: node.temp)
            #expect(output?.status == 0, "ray stop on \(node.ip): \(output?.text ?? "did not run")")
        }
        for pid in daemons {
            #expect(!processIsAlive(pid), "daemon \(pid) outlived ray stop")
            if processIsAlive(pid) { kill(pid, SIGKILL) }
        }
        for raylet in raylets { try? await IntegrationApp.expectNoWorkersLeft(startedBy: raylet) }
        for node in nodes { try? FileManager.default.removeItem(at: node.temp) }
    }

    struct ClusterFailure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    static var ray: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ray")
    }

    static func freshTemp() -> URL {
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("swift-ray-node-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
        return temp
    }

    static func recordedPIDs(in temp: URL, role: String? = nil) -> [pid_t] {
        let sessions = (try? FileManager.default.contentsOfDirectory(atPath: temp.path))?.filter { $0.hasPrefix("session_2") } ?? []
        return sessions.flatMap { session -> [pid_t] in
            let file = temp.appendingPathComponent(session).appendingPathComponent("processes")
            let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { line in
                let parts = line.split(separator: " ")
                guard parts.count == 2, role == nil || parts[0] == role! else { return nil }
                return pid_t(parts[1])
            }
        }
    }

    /// Runs `ray <arguments>` to completion (at most 30 s).
    static func runRay(_ arguments: [String], temp: URL, environment extra: [String: String] = [:],
                       launcher: [String] = []) async throws -> (status: Int32, text: String)
    {
        let process = Process()
        if let command = launcher.first {
            process.executableURL = URL(fileURLWithPath: command)
            process.arguments = Array(launcher.dropFirst()) + [ray.path] + arguments
        } else {
            process.executableURL = ray
            process.arguments = arguments
        }
        var environment = ProcessInfo.processInfo.environment
        environment["RAY_TMPDIR"] = temp.path
        environment["RAY_ADDRESS"] = nil
        environment["GRPC_VERBOSITY"] = "NONE"
        environment.merge(extra) { _, new in new }
        process.environment = environment
        let output = temp.appendingPathComponent("cli-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        defer { try? handle.close() }
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = ContinuousClock.now + .seconds(30)
        while process.isRunning {
            if ContinuousClock.now > deadline {
                process.terminate()
                throw ClusterFailure("ray \(arguments.joined(separator: " ")) did not finish in 30 s")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: output)
        return (process.terminationStatus, text)
    }
}
