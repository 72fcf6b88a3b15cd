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
        subcommands: [Start.self, Stop.self, Status.self, GCSServerCommand.self, RayletCommand.self, MonitorCommand.self,
                      DashboardCommand.self, JobSupervisorCommand.self, MetricsAgentCommand.self, JobCommand.self,
                      ListCommand.self, SummaryCommand.self, LogsCommand.self])
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
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
    @Option(help: "Resources besides CPU and memory, as a JSON object of numbers.") var resources: String?
    @Option(help: "The node's labels, as a JSON object of strings.") var labels: String?
    @Option(name: .customLong("object-store-memory")) var objectStoreMemory: Int?
    @Option(name: .customLong("object-store-name")) var objectStoreName: String?
    @Option(name: .customLong("object-manager-port")) var objectManagerPort: Int = 0
    @Option(name: .customLong("min-worker-port")) var minWorkerPort: Int = 0
    @Option(name: .customLong("max-worker-port")) var maxWorkerPort: Int = 0
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
        options.objectStoreMemory = objectStoreMemory
        options.objectManagerPort = objectManagerPort
        if minWorkerPort > 0 || maxWorkerPort > 0 { options.workerPorts = minWorkerPort...max(minWorkerPort, maxWorkerPort) }
        options.resources = Raylet.defaultResources(host: host, numCPUs: numCPUs, isHead: head)
        if let resources {
            let custom = try JSONDecoder().decode([String: Double].self, from: Data(resources.utf8))
            options.resources.merge(custom) { _, new in new }
        }
        if let labels { options.labels = try JSONDecoder().decode([String: String].self, from: Data(labels.utf8)) }
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
