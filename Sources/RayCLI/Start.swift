import ArgumentParser
import Foundation
import RayDashboard
import RayGCSClient
import RayProtos
import RayRaylet
import RayScheduling

/// `ray start --head` starts a cluster's head node (GCS and raylet); `ray start --address HOST:PORT`
/// starts a node that joins the cluster whose GCS is there. The daemons run in the background (or in
/// the foreground with `--block`), recorded in a session under the temp dir for `ray stop`.
struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a node of a cluster on this machine: the head (--head) or one that joins (--address).")

    @Flag(help: "Start the head node (GCS and raylet).")
    var head = false

    @Option(help: "Join the cluster whose GCS is at this HOST:PORT (a worker node).")
    var address: String?

    @Option(name: .customLong("num-cpus"), help: "CPUs this node offers (default: all).")
    var numCPUs: Int?

    @Option(name: .customLong("num-gpus"), help: "GPUs this node offers (default: none).")
    var numGPUs: Int?

    @Option(help: "Custom resources as JSON, e.g. '{\"accel\": 2}'.")
    var resources: String?

    @Option(help: "Node labels, key=value pairs separated by commas (zone=b,disk=ssd).")
    var labels: String?

    @Option(help: "The GCS port of a head node (default 6379; 0 picks a free one).")
    var port: Int?

    @Option(name: .customLong("node-ip-address"), help: "The address this node's daemons and workers listen on.")
    var nodeIPAddress = "127.0.0.1"

    @Option(name: .customLong("object-store-memory"), help: "Bytes of the node's object store (default: 30% of memory).")
    var objectStoreMemory: Int?

    @Option(name: .customLong("node-manager-port"), help: "The raylet's port (default 0: a free one).")
    var nodeManagerPort: Int = 0

    @Option(name: .customLong("object-manager-port"), help: "The object manager's port (default 0: a free one).")
    var objectManagerPort: Int = 0

    @Option(name: .customLong("min-worker-port"), help: "The lowest port workers bind (default 10002).")
    var minWorkerPort: Int = 10002

    @Option(name: .customLong("max-worker-port"), help: "The highest port workers bind (default 19999).")
    var maxWorkerPort: Int = 19999

    @Option(name: .customLong("autoscaling-config"),
            help: "A cluster config (Ray's YAML schema, provider type local): the head runs the autoscaler with it.")
    var autoscalingConfig: String?

    @Option(name: .customLong("include-dashboard"), help: "Start the dashboard and Jobs API on the head (default true).")
    var includeDashboard: Bool = true

    @Option(name: .customLong("dashboard-host"), help: "The address the dashboard binds (default 127.0.0.1; 0.0.0.0 for every interface).")
    var dashboardHost = "127.0.0.1"

    @Option(name: .customLong("dashboard-port"), help: "The dashboard's port (default 8265, or the next free one; 0 picks any).")
    var dashboardPort = 8265

    @Option(name: .customLong("metrics-export-port"), help: "The port of this node's /metrics (default 0: a free one).")
    var metricsExportPort = 0

    @Flag(help: "Stay in the foreground; stop everything on Ctrl-C or SIGTERM.")
    var block = false

    @Option(name: .customLong("temp-dir"), help: "Where sessions and logs go (default $RAY_TMPDIR or /tmp/swift-ray).")
    var tempDir: String?

    func validate() throws {
        if head == (address != nil) {
            throw ValidationError(head ? "give --head or --address, not both" : "`--address` is a required flag unless starting a head node with `--head`.")
        }
        if !head, port != nil { throw ValidationError("`--port` should only be specified when starting head node with `--head`.") }
        if let numCPUs, numCPUs < 0 { throw ValidationError("--num-cpus cannot be negative, got \(numCPUs)") }
        if let numGPUs, numGPUs < 0 { throw ValidationError("--num-gpus cannot be negative, got \(numGPUs)") }
        if let objectStoreMemory, objectStoreMemory < 64 * 1024 * 1024 {
            throw ValidationError("--object-store-memory must be at least 64 MiB (67108864 bytes), got \(objectStoreMemory)")
        }
        for (name, value) in [("--node-manager-port", nodeManagerPort), ("--object-manager-port", objectManagerPort),
                              ("--min-worker-port", minWorkerPort), ("--max-worker-port", maxWorkerPort), ("--port", port ?? 6379),
                              ("--dashboard-port", dashboardPort), ("--metrics-export-port", metricsExportPort)]
        where !(0...65535).contains(value) {
            throw ValidationError("\(name) must be a port (0–65535), got \(value)")
        }
        guard minWorkerPort <= maxWorkerPort else {
            throw ValidationError("--min-worker-port (\(minWorkerPort)) is above --max-worker-port (\(maxWorkerPort))")
        }
        _ = try parsedResources()
        _ = try parsedLabels()
        if let autoscalingConfig {
            guard head else { throw ValidationError("`--autoscaling-config` should only be given when starting the head node with `--head`.") }
            do { _ = try loadClusterConfig(autoscalingConfig) } catch { throw ValidationError("\(error)") }
        }
    }

    /// `--resources` as a JSON object of non-negative numbers, with what is wrong if it is not.
    func parsedResources() throws -> [String: Double] {
        guard let resources else { return [:] }
        let data = Data(resources.utf8)
        let parsed: [String: Double]
        do {
            parsed = try JSONDecoder().decode([String: Double].self, from: data)
        } catch {
            guard let object = try? JSONSerialization.jsonObject(with: data) else {
                throw ValidationError("--resources is not valid JSON: \(resources)")
            }
            guard let dictionary = object as? [String: Any] else {
                throw ValidationError("--resources must be a JSON object such as '{\"accel\": 1}', got \(resources)")
            }
            let bad = dictionary.sorted { $0.key < $1.key }.first { _, value in value is Bool || !(value is Double || value is Int) }
            throw ValidationError("--resources: the amount of \(bad?.key ?? "each resource") must be a number, got \(bad.map { "\($0.value)" } ?? resources)")
        }
        for (name, amount) in parsed.sorted(by: { $0.key < $1.key }) {
            guard amount >= 0, amount.isFinite else { throw ValidationError("--resources: \(name) cannot be \(amount)") }
            if ["CPU", "GPU"].contains(name) {
                throw ValidationError("--resources: use --num-\(name.lowercased())s for \(name), not --resources")
            }
        }
        return parsed
    }

    func parsedLabels() throws -> [String: String] {
        guard let labels else { return [:] }
        do {
            let parsed = try Labels.parse(labels)
            try Labels.validateUserLabels(parsed)
            return parsed
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func run() async throws {
        let temp = Session.tempDirectory(tempDir)
        let gcsAddress: String
        if let address {
            gcsAddress = try await reachGCS(address)
        } else {
            gcsAddress = ""
        }
        let session = try Session.create(in: temp)
        let clusterAddress: String
        var dashboardURL: String?
        do {
            if head {
                let boundPort = try await startDaemon(
                    session: session, role: "gcs_server",
                    arguments: ["gcs-server", "--host", nodeIPAddress, "--port", String(port ?? 6379)])
                clusterAddress = "\(nodeIPAddress):\(boundPort)"
                _ = try await GCSClient(address: clusterAddress, timeout: .seconds(5)).nodes()
            } else {
                clusterAddress = gcsAddress
            }
            let rayletPort = try await startDaemon(session: session, role: "raylet", arguments: try rayletArguments(session, gcs: clusterAddress))
            var agent = ["metrics-agent", "--gcs-address", clusterAddress, "--raylet-address", "\(nodeIPAddress):\(rayletPort)",
                         "--host", nodeIPAddress, "--port", String(metricsExportPort),
                         "--session-name", session.directory.lastPathComponent]
            if head { agent.append("--head") }
            _ = try await startDaemon(session: session, role: "metrics-agent", arguments: agent)
            if head, includeDashboard {
                let port = try await startDaemon(
                    session: session, role: "dashboard",
                    arguments: ["dashboard", "--gcs-address", clusterAddress, "--host", dashboardHost,
                                "--port", String(dashboardPort), "--session-dir", session.directory.path])
                dashboardURL = "http://\(dashboardHost == "0.0.0.0" ? nodeIPAddress : dashboardHost):\(port)"
            }
            if let autoscalingConfig {
                let path = URL(fileURLWithPath: autoscalingConfig).standardizedFileURL.path
                _ = try await startDaemon(session: session, role: "monitor",
                                          arguments: ["monitor", "--gcs-address", clusterAddress, "--autoscaling-config", path,
                                                      "--temp-dir", temp.path])
            }
        } catch {
            session.stopAll()
            throw error
        }
        if dashboardURL != nil, !["127.0.0.1", "localhost", "::1"].contains(dashboardHost),
           (try? AuthConfig.fromEnvironment())?.enabled != true {
            FileHandle.standardError.write(Data("""
                Warning: the dashboard listens on \(dashboardHost) without token authentication: anyone who reaches \
                that address can submit jobs. Set RAY_AUTH_MODE=token (with RAY_AUTH_TOKEN or ~/.ray/auth_token).

                """.utf8))
        }
        try Data(clusterAddress.utf8).write(to: Session.currentClusterFile(in: temp))
        print(head ? headMessage(clusterAddress, session, dashboard: dashboardURL) : workerMessage(clusterAddress, session))
        fflush(nil)
        if block {
            await waitForTermination()
            session.stopAll()
            try? FileManager.default.removeItem(at: Session.currentClusterFile(in: temp))
        }
    }

    private func rayletArguments(_ session: Session, gcs: String) throws -> [String] {
        // The store's file is named after the session, so `ray stop` can remove it even if the raylet
        // was killed and could not.
        let storeName = "swift-ray-\(session.directory.lastPathComponent)-raylet"
        try session.recordSharedMemory(storeName)
        var arguments = ["raylet", "--gcs-address", gcs, "--host", nodeIPAddress, "--port", String(nodeManagerPort),
                         "--object-store-name", storeName, "--log-dir", session.logs.path,
                         "--object-manager-port", String(objectManagerPort),
                         "--min-worker-port", String(minWorkerPort), "--max-worker-port", String(maxWorkerPort)]
        if head { arguments.append("--head") }
        if let numCPUs { arguments += ["--num-cpus", String(numCPUs)] }
        var custom = try parsedResources()
        if let numGPUs, numGPUs > 0 { custom["GPU"] = Double(numGPUs) }
        if !custom.isEmpty { arguments += ["--resources", String(decoding: try JSONEncoder().encode(custom), as: UTF8.self)] }
        let labels = try parsedLabels()
        if !labels.isEmpty { arguments += ["--labels", String(decoding: try JSONEncoder().encode(labels), as: UTF8.self)] }
        if let objectStoreMemory { arguments += ["--object-store-memory", String(objectStoreMemory)] }
        return arguments
    }

    /// Checks that a GCS answers at `address` (within a few seconds), before anything starts.
    private func reachGCS(_ address: String) async throws -> String {
        let target = address.hasPrefix("ray://") ? String(address.dropFirst(6)) : address
        guard let colon = target.lastIndex(of: ":"), Int(target[target.index(after: colon)...]) != nil else {
            throw CLIError("--address must be HOST:PORT (the head's GCS), got \(address)")
        }
        do {
            _ = try await GCSClient(address: target, timeout: .seconds(5)).nodes()
        } catch {
            throw CLIError("no GCS answers at \(target) (is the head node started with `ray start --head`?): \(error)")
        }
        return target
    }

    private func headMessage(_ address: String, _ session: Session, dashboard: String?) -> String {
        let dashboardLines = dashboard.map {
            """

              To submit a Ray job using the Ray Jobs CLI:
                RAY_ADDRESS='\($0)' ray job submit --working-dir . -- ./your-program

              See https://docs.ray.io/en/latest/cluster/running-applications/job-submission/index.html
              for more information on submitting Ray jobs to the Ray cluster.

              To view the dashboard, visit \($0)
              Dashboard address: \($0)

            """
        } ?? ""
        return """
        Local node IP: \(nodeIPAddress)

        --------------------
        Ray runtime started.
        --------------------

        Next steps
          To add another node to this Ray cluster, run
            ray start --address='\(address)'

          To connect to this Ray cluster:
            RAY_ADDRESS=\(address) ./your-program

          To see the status of the cluster, use
            ray status
        \(dashboardLines)
          GCS address: \(address)
          Session: \(session.directory.path)

          To terminate the Ray runtime, run
            ray stop
        """
    }

    private func workerMessage(_ address: String, _ session: Session) -> String {
        """
        Local node IP: \(nodeIPAddress)

        --------------------
        Ray runtime started.
        --------------------

        Joined the cluster at \(address) (session: \(session.directory.path)).

        To terminate the Ray runtime, run
          ray stop
        """
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
}
