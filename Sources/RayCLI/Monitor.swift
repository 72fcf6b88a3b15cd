import ArgumentParser
import Foundation
import RayAutoscaler
import RayAutoscaling
import RayGCSClient
import RayYAML

/// Reads a cluster config (Ray's schema, YAML through yaml-cpp): what is wrong with it names the
/// line and column, or the field's path.
func loadClusterConfig(_ path: String) throws -> ClusterConfig {
    let text: String
    do {
        text = try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        throw CLIError("cannot read the cluster config \(path): \(error.localizedDescription)")
    }
    do {
        return try ClusterConfig.parse(json: try YAML.toJSON(text))
    } catch let error as YAML.ParseError {
        throw CLIError("\(path): \(error)")
    } catch {
        throw CLIError("\(path): \(error)")
    }
}

/// `ray monitor`: the autoscaler on the head (started by `ray start --head --autoscaling-config`).
struct MonitorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor", abstract: "Run the autoscaler (started by `ray start --head --autoscaling-config`).",
        shouldDisplay: false)

    @Option(name: .customLong("gcs-address")) var gcsAddress: String
    @Option(name: .customLong("autoscaling-config")) var autoscalingConfig: String
    @Option(name: .customLong("temp-dir")) var tempDir: String
    @Option(name: .customLong("port-file"), help: "Written (0) once the autoscaler runs.") var portFile: String?
    @Flag var detach = false

    func run() async throws {
        if detach { setsid() }
        let config = try loadClusterConfig(autoscalingConfig)
        let gcs = try GCSClient(address: gcsAddress, timeout: .seconds(10))
        let provider = LocalNodeProvider(gcsAddress: gcsAddress, tempDir: URL(fileURLWithPath: tempDir))
        var options = Monitor.Options()
        if let text = ProcessInfo.processInfo.environment["RAY_AUTOSCALER_UPDATE_INTERVAL_S"], let seconds = Double(text), seconds > 0 {
            options.interval = .milliseconds(Int64(seconds * 1000))
        }
        let monitor = Monitor(gcs: gcs, config: config, provider: provider, options: options)
        let loop = Task {
            await monitor.run { line in
                FileHandle.standardError.write(Data("\(ISO8601DateFormatter().string(from: Date())) \(line)\n".utf8))
            }
        }
        try writePortFile(portFile, 0)
        FileHandle.standardError.write(Data("autoscaler running for cluster \(config.clusterName) (\(config.nodeTypes.count) node types)\n".utf8))
        let signalNumber = await waitForTermination()
        FileHandle.standardError.write(Data("autoscaler stopping on signal \(signalNumber)\n".utf8))
        loop.cancel()
    }
}
