import Foundation
import RayAutoscaler
import RayAutoscaling
import RayGCSClient

/// Worker nodes on this machine, as Ray's fake multi-node provider: each is `ray start --address`
/// on a loopback address of its own (127.0.0.2, 127.0.0.3, …), a session in the head's temp dir, so
/// `ray stop` there stops them with the head.
actor LocalNodeProvider: NodeProvider {
    private struct Instance {
        var node: ProviderNode
        var process: Process
        var log: URL
        var session: URL?
    }

    let gcsAddress: String
    let tempDir: URL
    let rayPath: String
    private var instances: [String: Instance] = [:]
    private var launched = 0
    private var logs: URL { tempDir.appendingPathComponent("autoscaler") }

    init(gcsAddress: String, tempDir: URL, rayPath: String = Processes.selfPath) {
        self.gcsAddress = gcsAddress
        self.tempDir = tempDir
        self.rayPath = rayPath
    }

    func launch(_ type: NodeTypeConfig, count: Int) async throws -> [String] {
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        var inUse = Set(instances.values.map(\.node.ip))
        if let nodes = try? await GCSClient(address: gcsAddress, timeout: .seconds(5)).nodes() {
            for node in nodes where node.state == .alive { inUse.insert(node.nodeManagerAddress) }
        }
        var ids: [String] = []
        for _ in 0..<count {
            guard let ip = (2...254).lazy.map({ "127.0.0.\($0)" }).first(where: { !inUse.contains($0) }) else {
                throw CLIError("no loopback address left for another node (127.0.0.2–127.0.0.254 are taken)")
            }
            inUse.insert(ip)
            launched += 1
            let id = "local-\(launched)-\(type.name)"
            let log = logs.appendingPathComponent("\(id).log")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: rayPath)
            process.arguments = Self.startArguments(type, gcs: gcsAddress, ip: ip, temp: tempDir)
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            try? handle.close()
            instances[id] = Instance(node: ProviderNode(id: id, type: type.name, ip: ip, status: .launching), process: process, log: log)
            ids.append(id)
        }
        return ids
    }

    /// `ray start` for a node of `type`: its resources as flags, its labels.
    static func startArguments(_ type: NodeTypeConfig, gcs: String, ip: String, temp: URL) -> [String] {
        var arguments = ["start", "--address", gcs, "--node-ip-address", ip, "--temp-dir", temp.path,
                         "--num-cpus", String(Int(type.resources["CPU"] ?? 0))]
        if let gpus = type.resources["GPU"], gpus >= 1 { arguments += ["--num-gpus", String(Int(gpus))] }
        if let store = type.resources["object_store_memory"] { arguments += ["--object-store-memory", String(Int(store))] }
        let custom = type.resources.filter { !["CPU", "GPU", "memory", "object_store_memory"].contains($0.key) }
        if !custom.isEmpty, let json = try? JSONEncoder().encode(custom) {
            arguments += ["--resources", String(decoding: json, as: UTF8.self)]
        }
        if !type.labels.isEmpty {
            arguments += ["--labels", type.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")]
        }
        return arguments
    }

    func nodes() async throws -> [ProviderNode] {
        for (id, instance) in instances where instance.node.status == .launching && !instance.process.isRunning {
            let output = (try? String(contentsOf: instance.log, encoding: .utf8)) ?? ""
            if instance.process.terminationStatus == 0 {
                instances[id]!.node.status = .started
                instances[id]!.session = Self.session(in: output)
            } else {
                let tail = output.split(separator: "\n").suffix(3).joined(separator: " | ")
                instances[id]!.node.status = .failed("`ray start` exited with status \(instance.process.terminationStatus): \(tail)")
            }
        }
        return instances.values.map(\.node).sorted { $0.id < $1.id }
    }

    /// The session `ray start` reported ("Joined the cluster at … (session: PATH).").
    static func session(in output: String) -> URL? {
        guard let range = output.range(of: "(session: ") else { return nil }
        let rest = output[range.upperBound...]
        guard let end = rest.range(of: ").") else { return nil }
        return URL(fileURLWithPath: String(rest[..<end.lowerBound]))
    }

    func terminate(_ ids: [String]) async throws {
        var sessions: [URL] = []
        for id in ids {
            guard let instance = instances.removeValue(forKey: id) else { continue }
            if instance.process.isRunning { instance.process.terminate() }
            if let session = instance.session { sessions.append(session) }
        }
        guard !sessions.isEmpty else { return }
        // Stopping waits for the processes (SIGTERM, then SIGKILL): off this actor's executor.
        await Task.detached {
            for directory in sessions { Session(directory: directory).stopAll() }
        }.value
    }
}
