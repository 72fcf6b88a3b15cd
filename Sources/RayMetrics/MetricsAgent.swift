import Foundation
import Hummingbird
import Logging
import NIOCore
import RayCommon
import RayGCSClient
import RayProtos
import RayRPC
import RayServices

/// A node's metrics agent (Ray's dashboard agent's reporter): serves `/metrics` on the node's
/// metrics export port from the node's own figures (/proc), its raylet's and, on the head, the
/// GCS's; registers its address in the GCS KV so the head's `/api/prometheus/sd` lists it.
public struct MetricsAgent: Sendable {
    public struct Options: Sendable {
        public var host = "127.0.0.1"
        public var port = 0
        public var gcsAddress: String
        public var rayletAddress: String
        public var nodeID: String
        public var identity: NodeMetrics.Identity

        public init(gcsAddress: String, rayletAddress: String, nodeID: String, identity: NodeMetrics.Identity) {
            self.gcsAddress = gcsAddress
            self.rayletAddress = rayletAddress
            self.nodeID = nodeID
            self.identity = identity
        }
    }

    /// The KV namespace where each node's agent says where it serves ("ip:port" under its node ID).
    public static let kvNamespace = "metrics_agents"

    let options: Options
    let metrics: NodeMetrics
    let gcs: GCSClient
    let raylet: RPCChannel
    let cpu = CPUSampler()

    public init(options: Options) throws {
        self.options = options
        self.metrics = NodeMetrics(identity: options.identity)
        self.gcs = try GCSClient(address: options.gcsAddress, timeout: .seconds(5))
        self.raylet = try RPCChannel(target: options.rayletAddress)
    }

    /// Serves until SIGTERM or SIGINT; `onBound` gets the port once it listens.
    public func run(onBound: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let router = Router()
        router.get("/metrics") { _, _ in
            await self.refresh()
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.exposition())))
        }
        var logger = Logger(label: "ray.metrics-agent")
        logger.logLevel = .warning
        let sampler = Task { await cpu.run() }
        defer { sampler.cancel() }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(options.host, port: options.port)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                try? await gcs.kv(namespace: Self.kvNamespace).put(options.nodeID, Data("\(options.identity.ip):\(port)".utf8))
                await onBound(port)
            },
            logger: logger)
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        _ = try? await gcs.kv(namespace: Self.kvNamespace).delete(options.nodeID)
    }

    /// Samples everything a scrape reports (a source that does not answer leaves its figures at 0).
    func refresh() async {
        var sample = NodeMetrics.Sample()
        sample.cpuUtilization = cpu.utilization
        sample.cpuCount = ProcessInfo.processInfo.activeProcessorCount
        (sample.memoryTotal, sample.memoryAvailable) = Self.memory()
        if let stats = try? await raylet.unary(NodeManagerMethods.getNodeStats, Ray_Rpc_GetNodeStatsRequest(),
                                               options: CallOptions(timeout: .seconds(2))) {
            sample.resourcesTotal = stats.resourcesTotal
            sample.resourcesAvailable = stats.resourcesAvailable
            sample.objectStoreUsed = stats.objectStoreUsed
            sample.workers = Int(stats.numWorkers)
        }
        if options.identity.isHead {
            if let actors = try? await gcs.actors() {
                for actor in actors {
                    let key = NodeMetrics.StateKey(state: actor.state.rayName, name: actor.className,
                                                   jobID: Hex.string(actor.jobID))
                    sample.actors[key, default: 0] += 1
                }
            }
            if let groups = try? await gcs.placementGroups() {
                for group in groups { sample.placementGroups[group.state.rayName, default: 0] += 1 }
            }
            if let counts = try? await gcs.taskCounts() {
                for entry in counts {
                    let key = NodeMetrics.StateKey(state: entry.state, name: entry.name,
                                                   jobID: Hex.string(entry.jobID))
                    sample.tasks[key, default: 0] += Int(entry.count)
                }
            }
            if let nodes = try? await gcs.nodes() { sample.aliveNodes = nodes.filter { $0.state == .alive }.count }
        }
        metrics.update(sample)
    }

    /// (MemTotal, MemAvailable) in bytes, from /proc/meminfo.
    static func memory() -> (Int64, Int64) {
        guard let text = ProcFile.read("/proc/meminfo") else { return (0, 0) }
        var values: [String: Int64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kb = Int64(parts[1]) { values[String(parts[0].dropLast())] = kb * 1024 }
        }
        return (values["MemTotal"] ?? 0, values["MemAvailable"] ?? 0)
    }
}

/// The node's CPU use in percent (0–100) over the last second, from /proc/stat.
final class CPUSampler: @unchecked Sendable {
    private let lock = NSLock()
    private var last: (busy: Double, total: Double)?
    private var value: Double = 0

    var utilization: Double { lock.withLock { value } }

    func run() async {
        while !Task.isCancelled {
            sample()
            try? await Task.sleep(for: .seconds(1))
        }
    }

    func sample() {
        guard let text = ProcFile.read("/proc/stat"), let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return }
        let fields = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard fields.count >= 4 else { return }
        let idle = fields[3] + (fields.count > 4 ? fields[4] : 0)
        let total = fields.reduce(0, +)
        lock.withLock {
            if let last, total > last.total {
                value = max(0, min(100, 100 * ((total - idle) - last.busy) / (total - last.total)))
            }
            last = (total - idle, total)
        }
    }
}

