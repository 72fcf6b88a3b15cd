import ArgumentParser
import Foundation
import RayDashboard
import RayGCSClient
import RayProtos

/// `ray status`: the cluster's nodes, resource usage and pending demand, in the layout of Ray 2.60's
/// `ray status` (its autoscaler's status text), from the GCS's node table, resource view and
/// placement groups, and the autoscaler's report when one runs (node types, pending launches,
/// recent failures).
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the nodes, resources and pending demand of a cluster.")

    @Option(help: "The GCS address (default $RAY_ADDRESS, then the cluster `ray start` started).")
    var address: String?

    @Flag(name: [.short, .long], help: "Also show each node's usage and activity.")
    var verbose = false

    @Option(name: .customLong("temp-dir"), help: "Where sessions are (default $RAY_TMPDIR or /tmp/swift-ray).")
    var tempDir: String?

    func run() async throws {
        let temp = Session.tempDirectory(tempDir)
        guard let target = address ?? ProcessInfo.processInfo.environment["RAY_ADDRESS"]
            ?? (try? String(contentsOf: Session.currentClusterFile(in: temp), encoding: .utf8))
        else { throw CLIError("no cluster: start one with `ray start --head` or pass --address") }
        let cluster: ClusterStatus.Cluster
        do {
            cluster = try await ClusterStatus.fetch(try GCSClient(address: target, timeout: .seconds(5)))
        } catch {
            throw CLIError("cannot reach the GCS at \(target): \(error)")
        }
        print(ClusterStatus.format(cluster, at: Date(), verbose: verbose))
    }
}
