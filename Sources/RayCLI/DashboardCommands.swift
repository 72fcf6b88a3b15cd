import ArgumentParser
import Foundation
import RayCommon
import RayDashboard
import RayGCSClient
import RayJobs
import RayMetrics

/// `ray dashboard`: the head's HTTP server (started by `ray start --head`).
struct DashboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard", abstract: "Run the dashboard and Jobs API (started by `ray start --head`).", shouldDisplay: false)

    @Option(name: .customLong("gcs-address")) var gcsAddress: String
    @Option var host = "127.0.0.1"
    @Option var port: Int = 8265
    @Option(name: .customLong("session-dir")) var sessionDirectory: String
    @Option(name: .customLong("port-file")) var portFile: String?
    @Flag var detach = false

    func run() async throws {
        if detach { setsid() }
        let session = Session(directory: URL(fileURLWithPath: sessionDirectory))
        var options = Dashboard.Options(
            gcsAddress: gcsAddress, logDirectory: session.logs.path,
            packagesDirectory: session.directory.appendingPathComponent("runtime_resources/working_dir_files").path,
            supervisorExecutable: Processes.selfPath)
        options.host = host
        options.auth = try AuthConfig.fromEnvironment()
        options.sessionName = session.directory.lastPathComponent
        options.onSupervisorStarted = { pid in try? session.record(role: "job-supervisor", pid: pid) }
        let gcs = try GCSClient(address: gcsAddress, timeout: .seconds(5))
        // Ray's default port, when taken, gives way to the next free one of the 50 after it.
        let candidates = port == 8265 ? Array(8265..<8315) : [port]
        for (index, candidate) in candidates.enumerated() {
            if candidates.count > 1, !Dashboard.isFree(host: host, port: candidate) { continue }
            options.port = candidate
            let bound = OnceFlag()
            do {
                try await Dashboard(options: options).run { port in
                    bound.set()
                    // Where clients that know only the GCS find the dashboard (Ray's KV key).
                    try? await gcs.kv(namespace: "dashboard").put("dashboard", Data("\(host):\(port)".utf8))
                    try? writePortFile(portFile, port)
                    FileHandle.standardError.write(Data("dashboard listening on http://\(host):\(port)\n".utf8))
                }
                return
            } catch {
                // Lost a race for the port: try the next one, if there is one.
                if bound.isSet || index == candidates.count - 1 { throw CLIError("the dashboard could not serve on \(host):\(candidate): \(error)") }
            }
        }
        throw CLIError("no free dashboard port on \(host) in \(candidates.first!)...\(candidates.last!) (give one with --dashboard-port, or 0 for any)")
    }
}

final class OnceFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

/// `ray job-supervisor`: runs one submitted job (started by the dashboard for each job).
struct JobSupervisorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job-supervisor", abstract: "Run a submitted job's entrypoint (started by the dashboard).", shouldDisplay: false)

    @Option(name: .customLong("gcs-address")) var gcsAddress: String
    @Option(name: .customLong("submission-id")) var submissionID: String
    @Option(name: .customLong("log-file")) var logFile: String
    @Option(name: .customLong("packages-dir")) var packagesDirectory: String

    func run() async throws {
        setsid()  // outlives the dashboard; `ray stop` finds it in the session
        let options = JobSupervisor.Options(
            submissionID: submissionID, gcsAddress: gcsAddress, logFile: logFile, packagesDirectory: packagesDirectory)
        let code = try await JobSupervisor(options: options).run()
        if code != 0 { throw ExitCode(code) }
    }
}

/// `ray metrics-agent`: a node's /metrics (started by `ray start` on every node).
struct MetricsAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics-agent", abstract: "Serve a node's Prometheus metrics (started by `ray start`).", shouldDisplay: false)

    @Option(name: .customLong("gcs-address")) var gcsAddress: String
    @Option(name: .customLong("raylet-address")) var rayletAddress: String
    @Option var host = "127.0.0.1"
    @Option var port: Int = 0
    @Option(name: .customLong("session-name")) var sessionName: String
    @Flag var head = false
    @Option(name: .customLong("port-file")) var portFile: String?
    @Flag var detach = false

    func run() async throws {
        if detach { setsid() }
        // The node is the one whose raylet is at --raylet-address.
        let gcs = try GCSClient(address: gcsAddress, timeout: .seconds(5))
        let node = try await gcs.nodes().first { "\($0.nodeManagerAddress):\($0.nodeManagerPort)" == rayletAddress }
        guard let node else { throw CLIError("no node of the cluster at \(gcsAddress) has its raylet at \(rayletAddress)") }
        var options = MetricsAgent.Options(
            gcsAddress: gcsAddress, rayletAddress: rayletAddress,
            nodeID: Hex.string(node.nodeID),
            identity: .init(ip: host, sessionName: sessionName, isHead: head))
        options.host = host
        options.port = port
        try await MetricsAgent(options: options).run { port in
            try? writePortFile(portFile, port)
            FileHandle.standardError.write(Data("metrics agent serving http://\(host):\(port)/metrics\n".utf8))
        }
    }
}
