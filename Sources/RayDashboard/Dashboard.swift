import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import RayAutoscaling
import RayCommon
import RayGCSClient
import RayJobs

/// The head's HTTP server (Ray's dashboard on port 8265): the Jobs REST API with Ray's paths and
/// JSON, working-directory packages, health. Hummingbird 2 under swift-service-lifecycle; the
/// job entrypoints run under supervisor processes (`ray job-supervisor`), so a restart of this
/// server loses no job.
public struct Dashboard: Sendable {
    public struct Options: Sendable {
        public var host = "127.0.0.1"
        /// 0 picks a free port.
        public var port = 8265
        public var gcsAddress: String
        /// Where job logs go (`job-driver-<id>.log`, as Ray names them).
        public var logDirectory: String
        /// Where working-directory packages are unpacked for jobs.
        public var packagesDirectory: String
        /// The `ray` executable, run as `ray job-supervisor …` for each job.
        public var supervisorExecutable: String
        /// Called with each supervisor's pid (the CLI records it in the session, for `ray stop`).
        public var onSupervisorStarted: @Sendable (Int32) -> Void = { _ in }
        public var sessionName = "session_swift_ray"
        /// Ray's token authentication (off unless a token is configured).
        public var auth = AuthConfig(token: nil)

        public init(gcsAddress: String, logDirectory: String, packagesDirectory: String, supervisorExecutable: String) {
            self.gcsAddress = gcsAddress
            self.logDirectory = logDirectory
            self.packagesDirectory = packagesDirectory
            self.supervisorExecutable = supervisorExecutable
        }
    }

    /// The version Ray 2.60's clients check (`ray_version` ≥ 2.8 enables every submit option;
    /// `version` 4 has DELETE and log tailing).
    public static let rayVersion = "2.60.0"
    public static let apiVersion = "4"

    let options: Options
    let gcs: GCSClient
    let jobs: JobsAPI

    public init(options: Options) throws {
        self.options = options
        self.gcs = try GCSClient(address: options.gcsAddress, timeout: .seconds(10))
        self.jobs = JobsAPI(options: options, store: JobStore(gcs: gcs))
    }

    /// Serves until SIGTERM or SIGINT; `onBound` gets the port once it listens.
    public func run(onBound: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let router = Router(context: BasicWebSocketRequestContext.self)
        addRoutes(to: router)
        var logger = Logger(label: "ray.dashboard")
        logger.logLevel = .warning
        let app = Application(
            router: router,
            server: .http1WebSocketUpgrade(webSocketRouter: router, configuration: .init(maxFrameSize: 1 << 20)),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: nil),
            onServerRunning: { channel in await onBound(channel.localAddress?.port ?? 0) },
            logger: logger)
        do {
            try MetricsConfig.write(session: URL(fileURLWithPath: options.logDirectory).deletingLastPathComponent())
        } catch {
            logger.warning("could not write the session's Prometheus and Grafana configuration: \(error)")
        }
        let discovery = Task { [self] in
            await writeServiceDiscovery(to: URL(fileURLWithPath: options.logDirectory).deletingLastPathComponent()
                .appendingPathComponent("prom_metrics_service_discovery.json").path)
        }
        defer { discovery.cancel() }
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }

    func addRoutes(to router: Router<BasicWebSocketRequestContext>) {
        // First: a router's middleware wraps only the routes added after it.
        router.add(middleware: AuthMiddleware(config: options.auth))
        let mode: JSON = .object(["authentication_mode": .string(options.auth.enabled ? "token" : "disabled")])
        router.get("/api/authentication_mode") { _, _ in HTTP.json(mode) }
        let version: JSON = .object([
            "version": .string(Self.apiVersion), "ray_version": .string(Self.rayVersion),
            "ray_commit": .string("swift-ray"), "session_name": .string(options.sessionName),
        ])
        router.get("/api/version") { _, _ in HTTP.json(version) }
        router.get("/api/ray/version") { _, _ in HTTP.json(version) }
        router.get("/api/gcs_healthz") { _, _ in
            do {
                _ = try await gcs.nodes()
                return HTTP.text("success", contentType: "application/text")
            } catch {
                return HTTP.text("GCS is not reachable: \(error)", status: .serviceUnavailable)
            }
        }
        // Ray's envelope: the autoscaler's status text (what `ray status` prints), its last error, and
        // its report as JSON (null before any autoscaler ran).
        router.get("/api/cluster_status") { _, _ in
            do {
                let cluster = try await ClusterStatus.fetch(gcs)
                let report = cluster.report.flatMap { try? JSONEncoder().encode($0) }.flatMap { try? JSON.parse($0) } ?? .null
                return HTTP.json(.object([
                    "result": .bool(true), "msg": .string("Got cluster status."),
                    "data": .object([
                        "autoscalingStatus": .string(ClusterStatus.format(cluster, at: Date())),
                        "autoscalingError": .null,
                        "clusterStatus": report,
                    ]),
                ]))
            } catch {
                return HTTP.json(.object(["result": .bool(false), "msg": .string("GCS is not reachable: \(error)"), "data": .object([])]),
                                 status: .serviceUnavailable)
            }
        }
        router.get("/api/healthz") { _, _ in HTTP.text("success", contentType: "application/text") }
        router.get("/api/prometheus/sd") { _, _ in
            do {
                var response = HTTP.json(try await serviceDiscovery())
                response.headers[.cacheControl] = "no-store"
                return response
            } catch {
                return HTTP.json(.object(["error": .string("service discovery error: \(error)")]), status: .internalServerError)
            }
        }
        jobs.addRoutes(to: router)
        StateAPI(gcs: gcs, jobs: jobs).addRoutes(to: router)
        LogsAPI(gcs: gcs, jobs: jobs).addRoutes(to: router)
        WebUI.addRoutes(to: router)
    }

    /// Prometheus's file-based service discovery, as Ray's: every alive node's metrics agent.
    func serviceDiscovery() async throws -> JSON {
        let alive = Set(try await gcs.nodes().filter { $0.state == .alive }.map { Hex.string($0.nodeID) })
        let kv = gcs.kv(namespace: "metrics_agents")
        var targets: [String] = []
        for node in try await kv.keys().sorted() where alive.contains(node) {
            if let address = try await kv.get(node) { targets.append(String(decoding: address, as: UTF8.self)) }
        }
        return .array([.object(["labels": .object(["job": .string("ray")]), "targets": .array(targets.map(JSON.string))])])
    }

    /// Keeps `<session>/prom_metrics_service_discovery.json` current (every 5 s, written atomically),
    /// the file Ray's generated Prometheus config reads.
    func writeServiceDiscovery(to path: String) async {
        while !Task.isCancelled {
            if let json = try? await serviceDiscovery() {
                let temporary = path + ".tmp"
                if (try? Data(json.text.utf8).write(to: URL(fileURLWithPath: temporary))) != nil {
                    _ = rename(temporary, path)
                }
            }
            try? await Task.sleep(for: .seconds(5))
        }
    }

    /// True if nothing listens on `host:port` (a probe; the bind may still lose a race).
    public static func isFree(host: String, port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return true }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

/// Responses as Ray's aiohttp server writes them.
enum HTTP {
    static func json(_ value: JSON, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: value.text)))
    }

    static func text(_ text: String, status: HTTPResponse.Status = .ok, contentType: String = "text/plain; charset=utf-8") -> Response {
        Response(status: status, headers: [.contentType: contentType], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
