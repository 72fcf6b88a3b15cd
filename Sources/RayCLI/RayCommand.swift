import ArgumentParser
import Foundation
import RayGCS
import RayProtos
import RayRPC
import RayServices

/// `ray`: starts, inspects and stops swift-ray clusters, with Ray's command names.
@main
struct RayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ray",
        abstract: "Start, inspect and stop swift-ray clusters.",
        subcommands: [Start.self, Stop.self, Status.self, GCSServerCommand.self])
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `ray start --head`: starts the head node's daemons in the background and prints the address.
struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start the head node of a cluster on this machine.")

    @Flag(help: "Start the head node (GCS). Joining an existing cluster (--address) comes with multi-node support.")
    var head = false

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
        let temp = Session.tempDirectory(tempDir)
        let session = try Session.create(in: temp)
        let portFile = session.directory.appendingPathComponent("gcs_server.port")
        let gcs = try spawnDaemon(
            session: session, role: "gcs_server",
            arguments: ["gcs-server", "--host", nodeIPAddress, "--port", String(port), "--port-file", portFile.path,
                        "--detach"])
        let boundPort: Int
        do {
            boundPort = try await waitForPortFile(portFile, pid: gcs.processIdentifier, session: session, role: "gcs_server")
            try await checkGCS(host: nodeIPAddress, port: boundPort)
        } catch {
            Processes.stop(gcs.processIdentifier, marker: "gcs-server")
            session.forgetProcesses()
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
            for process in session.processes() { Processes.stop(process.pid, marker: "gcs-server") }
            session.forgetProcesses()
            try? FileManager.default.removeItem(at: Session.currentClusterFile(in: temp))
        }
    }

    private func spawnDaemon(session: Session, role: String, arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Processes.selfPath)
        process.arguments = arguments
        let out = session.logs.appendingPathComponent("\(role).out")
        let err = session.logs.appendingPathComponent("\(role).err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        try session.record(role: role, pid: process.processIdentifier)
        return process
    }

    /// Waits until the daemon wrote its bound port; fails with its log if it exits first.
    private func waitForPortFile(_ file: URL, pid: pid_t, session: Session, role: String) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOf: file, encoding: .utf8), let port = Int(text) { return port }
            if !Processes.isRunning(pid, marker: "gcs-server") {
                let log = (try? String(contentsOf: session.logs.appendingPathComponent("\(role).err"), encoding: .utf8)) ?? ""
                throw CLIError("\(role) exited during start-up:\n\(log.suffix(2000))")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw CLIError("\(role) did not report its port within 10 s (see \(session.logs.path))")
    }

    private func checkGCS(host: String, port: Int) async throws {
        let channel = try RPCChannel(host: host, port: port)
        _ = try await channel.unary(
            GCSMethods.getAllNodeInfo, Ray_Rpc_GetAllNodeInfoRequest(),
            options: CallOptions(timeout: .seconds(5), waitForReady: true))
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
            for process in session.processes() {
                let marker = process.role == "gcs_server" ? "gcs-server" : process.role
                if Processes.isRunning(process.pid, marker: marker) {
                    if Processes.stop(process.pid, marker: marker) { stopped += 1 } else { failed.append(process.pid) }
                }
            }
            session.forgetProcesses()
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
        let channel = try RPCChannel(target: target)
        let nodes: [Ray_Rpc_GcsNodeInfo]
        do {
            nodes = try await channel.unary(
                GCSMethods.getAllNodeInfo, Ray_Rpc_GetAllNodeInfoRequest(), options: CallOptions(timeout: .seconds(5))
            ).nodeInfoList
        } catch {
            throw CLIError("cannot reach the GCS at \(target): \(error)")
        }
        let alive = nodes.filter { $0.state == .alive }
        print("======== Cluster status (\(target)) ========")
        print("Node status")
        print("  Active: \(alive.count)")
        print("  Dead: \(nodes.count - alive.count)")
        var totals: [String: Double] = [:]
        for node in alive { for (name, amount) in node.resourcesTotal { totals[name, default: 0] += amount } }
        print("Resources (total)")
        for (name, amount) in totals.sorted(by: { $0.key < $1.key }) {
            print("  \(name): \(amount.rounded() == amount ? String(Int(amount)) : String(amount))")
        }
        print("Demands")
        print("  (no resource demands)")
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
        if let portFile {
            let temporary = portFile + ".tmp"
            try Data(String(server.port).utf8).write(to: URL(fileURLWithPath: temporary))
            try FileManager.default.moveItem(atPath: temporary, toPath: portFile)
        }
        FileHandle.standardError.write(Data("gcs_server listening on \(host):\(server.port)\n".utf8))
        await waitForTermination()
        await server.shutdown(grace: .seconds(1))
    }
}

/// Returns on SIGTERM or SIGINT.
func waitForTermination() async {
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
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
                    continuation.resume()
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
