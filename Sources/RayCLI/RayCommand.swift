import ArgumentParser
import Foundation
import RayGCS
import RayGCSClient
import RayProtos
import RayRaylet

/// `ray`: starts, inspects and stops swift-ray clusters, with Ray's command names.
@main
struct RayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ray",
        abstract: "Start, inspect and stop swift-ray clusters.",
        subcommands: [Start.self, Stop.self, Status.self, GCSServerCommand.self, RayletCommand.self])
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `ray start --head`: starts the head node's daemons in the background and prints the address.
struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start the head node of a cluster on this machine.")

    @Flag(help: "Start the head node (GCS and raylet). Joining a cluster (--address) comes with multi-node support.")
    var head = false

    @Option(name: .customLong("num-cpus"), help: "CPUs this node offers (default: all).")
    var numCPUs: Int?

    @Option(help: "Custom resources as JSON, e.g. '{\"GPU_like\": 2}'.")
    var resources: String?

    @Option(help: "The GCS port (0 picks a free one).")
    var port: Int = 6379

    @Option(name: .customLong("node-ip-address"), help: "The address the daemons listen on.")
    var nodeIPAddress = "127.0.0.1"

    @Flag(help: "Stay in the foreground; stop everything on Ctrl-C or SIGTERM.")
    var block = false

    @Option(name: .customLong("temp-dir"), help: "Where sessions and logs go (default $RAY_TMPDIR or /tmp/swift-ray).")
    var tempDir: String?

    func run() async throws {
        guard head else { throw CLIError("only `ray start --head` is supported so far") }
        var custom: [String: Double] = [:]
        if let resources {
            guard let parsed = try? JSONDecoder().decode([String: Double].self, from: Data(resources.utf8)) else {
                throw CLIError("--resources must be a JSON object of numbers, got \(resources)")
            }
            custom = parsed
        }
        let temp = Session.tempDirectory(tempDir)
        let session = try Session.create(in: temp)
        let boundPort: Int
        do {
            boundPort = try await startDaemon(
                session: session, role: "gcs_server",
                arguments: ["gcs-server", "--host", nodeIPAddress, "--port", String(port)])
            try await checkGCS(host: nodeIPAddress, port: boundPort)
            // The store's file is named after the session, so `ray stop` can remove it even if the raylet
            // was killed and could not.
            let storeName = "swift-ray-\(session.directory.lastPathComponent)-raylet"
            try session.recordSharedMemory(storeName)
            var rayletArguments = ["raylet", "--gcs-address", "\(nodeIPAddress):\(boundPort)", "--host", nodeIPAddress,
                                   "--head", "--object-store-name", storeName]
            rayletArguments += ["--log-dir", session.logs.path]
            if let numCPUs { rayletArguments += ["--num-cpus", String(numCPUs)] }
            if !custom.isEmpty, let json = String(data: try JSONEncoder().encode(custom), encoding: .utf8) {
                rayletArguments += ["--resources", json]
            }
            _ = try await startDaemon(session: session, role: "raylet", arguments: rayletArguments)
        } catch {
            session.stopAll()
            throw error
        }
        let address = "\(nodeIPAddress):\(boundPort)"
        try Data(address.utf8).write(to: Session.currentClusterFile(in: temp))
        print("""
            Ray runtime started.
              GCS address: \(address)
              Session: \(session.directory.path)
            To connect to this cluster: RAY_ADDRESS=\(address)
            To see its status: ray status
            To stop it: ray stop
            """)
        fflush(nil)
        if block {
            await waitForTermination()
            session.stopAll()
            try? FileManager.default.removeItem(at: Session.currentClusterFile(in: temp))
        }
    }

    /// Starts `ray <arguments>` detached, logging to the session, and waits for the port it bound.
    private func startDaemon(session: Session, role: String, arguments: [String]) async throws -> Int {
        let portFile = session.directory.appendingPathComponent("\(role).port")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Processes.selfPath)
        process.arguments = arguments + ["--port-file", portFile.path, "--detach"]
        let out = session.logs.appendingPathComponent("\(role).out")
        let err = session.logs.appendingPathComponent("\(role).err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        try session.record(role: role, pid: process.processIdentifier)
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOf: portFile, encoding: .utf8), let port = Int(text) { return port }
            // Our own child: ask Foundation, which reaps it. (Its /proc command line may still be this
            // process's for a moment after the spawn, so the marker check would misreport it dead.)
            if !process.isRunning {
                let log = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
                throw CLIError("\(role) exited during start-up:\n\(log.suffix(2000))")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw CLIError("\(role) did not report its port within 15 s (see \(session.logs.path))")
    }

    private func checkGCS(host: String, port: Int) async throws {
        _ = try await GCSClient(address: "\(host):\(port)", timeout: .seconds(5)).nodes()
    }
}

/// `ray stop`: stops every process the sessions under the temp dir started.
struct Stop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop the swift-ray processes started on this machine.")

    @Option(name: .customLong("temp-dir"), help: "Where sessions are (default $RAY_TMPDIR or /tmp/swift-ray).")
    var tempDir: String?

    func run() async throws {
        let temp = Session.tempDirectory(tempDir)
        var stopped = 0
        var failed: [pid_t] = []
        for session in Session.all(in: temp) {
            let result = session.stopAll()
            stopped += result.stopped
            failed += result.failed
        }
        try? FileManager.default.removeItem(at: Session.currentClusterFile(in: temp))
        print("Stopped \(stopped) swift-ray process\(stopped == 1 ? "" : "es").")
        if !failed.isEmpty { throw CLIError("could not stop processes \(failed)") }
    }
}

/// `ray status`: the cluster's nodes and resources.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the nodes and resources of a cluster.")

    @Option(help: "The GCS address (default $RAY_ADDRESS, then the cluster `ray start` started).")
    var address: String?

    @Option(name: .customLong("temp-dir"), help: "Where sessions are (default $RAY_TMPDIR or /tmp/swift-ray).")
    var tempDir: String?

    func run() async throws {
        let temp = Session.tempDirectory(tempDir)
        guard let target = address ?? ProcessInfo.processInfo.environment["RAY_ADDRESS"]
            ?? (try? String(contentsOf: Session.currentClusterFile(in: temp), encoding: .utf8))
        else { throw CLIError("no cluster: start one with `ray start --head` or pass --address") }
        let nodes: [Ray_Rpc_GcsNodeInfo]
        do {
            nodes = try await GCSClient(address: target, timeout: .seconds(5)).nodes()
        } catch {
            throw CLIError("cannot reach the GCS at \(target): \(error)")
        }
        let alive = nodes.filter { $0.state == .alive }
        print("======== Cluster status (\(target)) ========")
        print("Node status")
        print("  Active: \(alive.count)")
        print("  Dead: \(nodes.count - alive.count)")
        // The GCS's resource view: what each raylet last reported (in use, waiting).
        var totals: [String: Double] = [:]
        var available: [String: Double] = [:]
        var demand: [String: Int] = [:]
        let view = (try? await GCSClient(address: target, timeout: .seconds(5)).resourceUsage()) ?? []
        var unreported: [String] = []
        for node in alive {
            for (name, amount) in node.resourcesTotal { totals[name, default: 0] += amount }
            guard let report = view.first(where: { $0.nodeID == node.nodeID }) else {
                unreported.append("\(node.nodeManagerAddress):\(node.nodeManagerPort)")
                for (name, amount) in node.resourcesTotal { available[name, default: 0] += amount }
                continue
            }
            for (name, amount) in report.resourcesAvailable { available[name, default: 0] += amount }
            available["object_store_memory", default: 0] += max(0, (node.resourcesTotal["object_store_memory"] ?? 0) - Double(report.objectStoreUsedBytes))
            for entry in report.resourceLoad {
                let shape = entry.shape.sorted { $0.key < $1.key }.map { "'\($0.key)': \($0.value)" }.joined(separator: ", ")
                demand["{\(shape)}", default: 0] += Int(entry.count)
            }
        }
        print("Resources")
        print("  Usage:")
        for (name, total) in totals.sorted(by: { $0.key < $1.key }) where !name.hasPrefix("node:") {
            let used = max(0, total - (available[name] ?? 0))
            print("    \(format(used))/\(format(total)) \(name)")
        }
        print("  Demands:")
        if demand.isEmpty { print("    (no resource demands)") }
        for (shape, count) in demand.sorted(by: { $0.key < $1.key }) { print("    \(shape): \(count)+ pending tasks") }
        if !unreported.isEmpty { print("  (no resource report yet from: \(unreported.joined(separator: ", ")))") }
    }

    private func format(_ amount: Double) -> String {
        amount == amount.rounded() && abs(amount) < 1e15 ? String(Int(amount)) : String(format: "%.2f", amount)
    }
}

/// `ray gcs-server`: the GCS daemon (started by `ray start`).
struct GCSServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gcs-server", abstract: "Run the GCS (started by `ray start`).", shouldDisplay: false)

    @Option var host = "127.0.0.1"
    @Option var port: Int = 6379
    @Option(name: .customLong("port-file"), help: "Write the bound port here once serving.")
    var portFile: String?
    @Flag(help: "Leave the terminal's session, so closing it does not stop the daemon.")
    var detach = false

    func run() async throws {
        if detach { setsid() }
        let server = try GCSServer(host: host, port: port)
        try writePortFile(portFile, server.port)
        FileHandle.standardError.write(Data("gcs_server listening on \(host):\(server.port)\n".utf8))
        let signalNumber = await waitForTermination()
        FileHandle.standardError.write(Data("gcs_server stopping on signal \(signalNumber)\n".utf8))
        await server.shutdown(grace: .seconds(1))
    }
}

/// `ray raylet`: the per-node daemon (started by `ray start`).
struct RayletCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raylet", abstract: "Run a raylet (started by `ray start`).", shouldDisplay: false)

    @Option(name: .customLong("gcs-address")) var gcsAddress: String
    @Option var host = "127.0.0.1"
    @Option var port: Int = 0
    @Flag var head = false
    @Option(name: .customLong("num-cpus")) var numCPUs: Int?
    @Option var resources: String?
    @Option(name: .customLong("object-store-name")) var objectStoreName: String?
    @Option(name: .customLong("port-file")) var portFile: String?
    @Option(name: .customLong("log-dir"), help: "Where worker log files go.") var logDir: String?
    @Flag var detach = false

    func run() async throws {
        if detach { setsid() }
        var options = Raylet.Options()
        options.logDirectory = logDir
        options.host = host
        options.port = port
        options.isHead = head
        options.objectStoreName = objectStoreName
        options.resources = Raylet.defaultResources(host: host, numCPUs: numCPUs, isHead: head)
        if let resources {
            let custom = try JSONDecoder().decode([String: Double].self, from: Data(resources.utf8))
            options.resources.merge(custom) { _, new in new }
        }
        let raylet = try await Raylet(gcsAddress: gcsAddress, options: options)
        try writePortFile(portFile, raylet.port)
        FileHandle.standardError.write(Data("raylet \(raylet.nodeID) listening on \(host):\(raylet.port)\n".utf8))
        let signalNumber = await waitForTermination()
        FileHandle.standardError.write(Data("raylet stopping on signal \(signalNumber)\n".utf8))
        await raylet.shutdown()
    }
}

/// Writes `port` to `path` atomically (for the parent that waits on it).
func writePortFile(_ path: String?, _ port: Int) throws {
    guard let path else { return }
    let temporary = path + ".tmp"
    try Data(String(port).utf8).write(to: URL(fileURLWithPath: temporary))
    try FileManager.default.moveItem(atPath: temporary, toPath: path)
}

/// Returns the signal number on SIGTERM or SIGINT.
@discardableResult
func waitForTermination() async -> Int32 {
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    return await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
        let resumed = NSLock()
        nonisolated(unsafe) var done = false
        var sources: [any DispatchSourceSignal] = []
        for signalNumber in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                resumed.lock()
                defer { resumed.unlock() }
                if !done {
                    done = true
                    continuation.resume(returning: signalNumber)
                }
            }
            source.resume()
            sources.append(source)
        }
        Signals.keepAlive(sources)
    }
}

/// Keeps signal sources alive for the life of the process.
enum Signals {
    nonisolated(unsafe) private static var retained: [any DispatchSourceSignal] = []
    static func keepAlive(_ sources: [any DispatchSourceSignal]) { retained.append(contentsOf: sources) }
}
