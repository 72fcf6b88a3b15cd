@preconcurrency import Glibc
import Foundation
@_exported import RayCommon
import RayConcurrency
import RayCoreWorker
import RayGCS
import RayGCSClient
import RayProtos
import RayRaylet
import Synchronization

/// A connection of this program to a Ray cluster: an embedded local one (``start(address:options:functions:)``
/// without an address), or a running one. Drivers get one from `RayApplication`; tasks, puts and
/// gets go through it.
public final class Ray: Sendable {
    /// How an embedded local cluster is set up (ignored when connecting to a running one).
    public struct LocalClusterOptions: Sendable {
        /// CPUs the node offers (nil: every core of the machine).
        public var numCPUs: Int?
        /// Custom resources, e.g. `["GPU": 1, "special": 2]`.
        public var resources: [String: Double] = [:]
        /// Bytes of the node's shared-memory object store (nil: `RAY_object_store_memory`, else 30% of memory).
        public var objectStoreMemory: Int?
        /// Idle workers above one per CPU stop after this long.
        public var idleWorkerTimeout: Duration = .seconds(1)
        /// Also start the dashboard (Jobs REST API, state API, web page) for the embedded cluster, as
        /// `ray start --head` does: the `ray` command (`rayExecutable`, else `$RAY_EXECUTABLE`, else
        /// `ray` on the PATH) runs it as a process of its own, so this program links no HTTP server.
        public var includeDashboard = false
        /// Its port (0: a free one); ``Ray/dashboardURL`` says where it is.
        public var dashboardPort = 0
        public var rayExecutable: String?
        public init() {}
    }

    /// The embedded cluster's dashboard (`LocalClusterOptions.includeDashboard`), e.g. `http://127.0.0.1:8265`.
    public var dashboardURL: String? { dashboard?.url }
    private let dashboard: EmbeddedDashboard?

    public let jobID: JobID
    /// Where an embedded cluster's worker logs go (`worker-<id>-<pid>.out` and `.err`); nil when
    /// connected to a cluster started elsewhere (its session's `logs` folder has them).
    public let logDirectory: String?
    /// The GCS this driver talks to, `host:port`.
    public let gcsAddress: String
    /// Where this driver's named actors live and are looked up by default: `RAY_NAMESPACE`, the
    /// `namespace` given to ``start(address:namespace:options:functions:)``, else a fresh anonymous
    /// one (as in Ray, so two drivers share names only when they say so).
    public let namespace: String
    @usableFromInline let worker: CoreWorker
    let actorSystem: RayActorSystem
    let gcs: GCSClient
    /// The embedded cluster, if this driver started one.
    private let embedded: (gcs: GCSServer, raylet: Raylet)?
    private let stopped = Mutex(false)

    private static let current = Mutex<CoreWorker?>(nil)

    /// The core worker of this process, once Ray runs in it.
    static var currentWorker: CoreWorker? { current.withLock { $0 } }

    @usableFromInline
    static func requireWorker() -> CoreWorker {
        guard let worker = currentWorker else {
            fatalError("Ray is not running in this process: start it with Ray.start() or a RayApplication before calling .remote")
        }
        return worker
    }

    private init(jobID: JobID, gcsAddress: String, namespace: String, worker: CoreWorker, gcs: GCSClient,
                 embedded: (GCSServer, Raylet)?, logDirectory: String?, dashboard: EmbeddedDashboard? = nil) {
        self.logDirectory = logDirectory
        self.dashboard = dashboard
        self.namespace = namespace
        self.actorSystem = worker.actorHost as! RayActorSystem  // start() configured it with makeActorSystem
        self.jobID = jobID
        self.gcsAddress = gcsAddress
        self.worker = worker
        self.gcs = gcs
        self.embedded = embedded
    }

    /// Connects this program as a driver. With no `address` and no `RAY_ADDRESS`, starts an embedded
    /// local cluster (a GCS and a raylet in this process; workers are this executable re-launched)
    /// that ``shutdown()`` tears down. Otherwise connects to the cluster whose GCS is at `address`
    /// (`host:port`), failing within a few seconds if nothing answers there.
    public static func start(
        address: String? = nil, namespace: String? = nil, options: LocalClusterOptions = LocalClusterOptions(),
        functions: [any AnyRemoteFunction] = []
    ) async throws -> Ray {
        var table: [String: TaskFunction] = [:]
        for function in functions {
            guard table[function.name] == nil else {
                throw RayError(.system, "two remote functions are named '\(function.name)'")
            }
            table[function.name] = function._body
        }
        let target = address ?? ProcessInfo.processInfo.environment["RAY_ADDRESS"].flatMap { $0.isEmpty || $0 == "local" ? nil : $0 }
        var embedded: (GCSServer, Raylet)?
        var logDirectory: String?
        let gcsAddress: String
        let rayletAddress: String
        if let target {
            gcsAddress = target.hasPrefix("ray://") ? String(target.dropFirst(6)) : target
            let nodes: [Ray_Rpc_GcsNodeInfo]
            do {
                nodes = try await GCSClient(address: gcsAddress, timeout: .seconds(3)).nodes()
            } catch {
                throw RayError(.connection, "no Ray cluster answers at \(gcsAddress)", cause: "\(error)")
            }
            guard let node = Self.localNode(nodes) else { throw RayError(.connection, "the cluster at \(gcsAddress) has no live node") }
            rayletAddress = "\(node.nodeManagerAddress):\(node.nodeManagerPort)"
        } else {
            let gcsServer = try GCSServer(host: "127.0.0.1", port: 0)
            gcsAddress = "127.0.0.1:\(gcsServer.port)"
            var rayletOptions = Raylet.Options()
            rayletOptions.isHead = true
            rayletOptions.resources = Raylet.defaultResources(host: "127.0.0.1", numCPUs: options.numCPUs, isHead: true)
                .merging(options.resources) { _, custom in custom }
            rayletOptions.objectStoreMemory = options.objectStoreMemory
            rayletOptions.idleWorkerTimeout = options.idleWorkerTimeout
            // A session folder as `ray start` makes: <RAY_TMPDIR or /tmp/swift-ray>/session_<time>_<pid>/logs.
            let temp = ProcessInfo.processInfo.environment["RAY_TMPDIR"] ?? "/tmp/swift-ray"
            let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "-")
            let logs = "\(temp)/session_\(stamp)_\(getpid())/logs"
            try? FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
            rayletOptions.logDirectory = logs
            logDirectory = logs
            let raylet: Raylet
            do {
                raylet = try await Raylet(gcsAddress: gcsAddress, options: rayletOptions)
            } catch {
                await gcsServer.shutdown(grace: .zero)
                throw error
            }
            embedded = (gcsServer, raylet)
            rayletAddress = "127.0.0.1:\(raylet.port)"
        }
        let gcs = try GCSClient(address: gcsAddress, timeout: .seconds(10))
        do {
            let jobID = try await gcs.nextJobID()
            var configuration = CoreWorker.Configuration(
                mode: .driver, jobID: jobID, rayletAddress: rayletAddress, gcsAddress: gcsAddress)
            configuration.executable = currentExecutable()
            configuration.arguments = Array(CommandLine.arguments.dropFirst())
            configuration.workingDirectory = FileManager.default.currentDirectoryPath
            configuration.functions = table
            configuration.actorHost = makeActorSystem
            configuration.willServe = { worker in current.withLock { $0 = worker } }
            let worker = try await CoreWorker.connect(configuration)
            var job = Ray_Rpc_JobTableData()
            job.jobID = Data(jobID.bytes)
            job.driverAddress = worker.address
            job.driverPid = getpid()
            job.entrypoint = CommandLine.arguments.joined(separator: " ")
            job.startTimeMs = UInt64(Date().timeIntervalSince1970 * 1000)
            let namespace = namespace ?? ProcessInfo.processInfo.environment["RAY_NAMESPACE"] ?? UUID().uuidString.lowercased()
            job.namespace = namespace  // the job's workers look it up for their default namespace
            // Any node's raylet starts this job's workers from this (the lease may come from another node).
            job.workerLaunch.executable = configuration.executable
            job.workerLaunch.arguments = configuration.arguments
            job.workerLaunch.workingDir = configuration.workingDirectory
            job.workerLaunch.environment = configuration.environment
            // A driver run as a submitted job's entrypoint says so (the Jobs API shows its job ID) and
            // names its working-directory package (other nodes' raylets unpack it for its workers).
            for key in [RuntimeEnvironment.submissionID, RuntimeEnvironment.workingDirURI, RuntimeEnvironment.workingDirPath] {
                if let value = ProcessInfo.processInfo.environment[key], !value.isEmpty { job.workerLaunch.environment[key] = value }
            }
            Self.setJobNamespace(namespace)
            try? await gcs.addJob(job)
            var dashboard: EmbeddedDashboard?
            if embedded != nil, options.includeDashboard, let logDirectory {
                do {
                    dashboard = try await EmbeddedDashboard.start(
                        gcsAddress: gcsAddress, sessionDirectory: URL(fileURLWithPath: logDirectory).deletingLastPathComponent().path,
                        port: options.dashboardPort, executable: options.rayExecutable)
                } catch {
                    await worker.shutdown()
                    throw error
                }
            }
            return Ray(jobID: jobID, gcsAddress: gcsAddress, namespace: namespace, worker: worker, gcs: gcs,
                       embedded: embedded, logDirectory: logDirectory, dashboard: dashboard)
        } catch {
            if let (gcsServer, raylet) = embedded {
                await raylet.shutdown()
                await gcsServer.shutdown(grace: .zero)
            }
            throw error
        }
    }

    /// Disconnects: the job's workers stop, and an embedded cluster is torn down.
    public func shutdown() async {
        guard stopped.withLock({ s in defer { s = true }; return !s }) else { return }
        try? await gcs.markJobFinished(jobID)
        await worker.shutdown()
        Self.current.withLock { if $0 === worker { $0 = nil } }
        if (BinaryDecoder.userInfo[.actorSystemKey] as? RayActorSystem) === actorSystem {
            BinaryDecoder.userInfo[.actorSystemKey] = nil
        }
        dashboard?.stop()
        if let (gcsServer, raylet) = embedded {
            await raylet.shutdown()
            await gcsServer.shutdown(grace: .zero)
        }
    }

    // MARK: objects

    /// Stores `value` in the cluster and returns a reference to it (owned by this process).
    /// Large values go to the node's shared-memory store; one that cannot fit throws
    /// `ObjectStoreFullError`.
    @inlinable
    public func put<T: Codable & Sendable>(_ value: T) async throws -> ObjectRef<T> {
        ObjectRef(adopting: try await worker.put(value), worker: worker)
    }

    /// The values of `refs`, in order (see ``ObjectRef/get(timeout:)``).
    @inlinable
    public func get<T>(_ refs: [ObjectRef<T>], timeout: Duration? = nil) async throws -> [T] {
        try await refs.get(timeout: timeout)
    }

    /// Waits until `numReturns` of `refs` are ready or `timeout` passes (nil: no limit); returns the
    /// ready ones (at most `numReturns`) and the rest, each in the order given.
    @inlinable
    public func wait<T>(_ refs: [ObjectRef<T>], numReturns: Int = 1, timeout: Duration? = nil) async
        -> (ready: [ObjectRef<T>], notReady: [ObjectRef<T>])
    {
        let (ready, _) = await worker.wait(refs.map(\.id), numReturns: numReturns, timeout: timeout)
        let readySet = Set(ready)
        return (refs.filter { readySet.contains($0.id) }, refs.filter { !readySet.contains($0.id) })
    }

    /// Cancels the task that produces `ref` (see Ray's `ray.cancel`): a task still queued never runs;
    /// a running one is cancelled (Swift task cancellation), or with `force` its worker is killed.
    /// Its `get` then throws `TaskCancelledError`.
    public func cancel<T>(_ ref: ObjectRef<T>, force: Bool = false) async {
        await worker.cancel(ref.id, force: force)
    }

    /// The node's resources as the raylet offers them.
    public var clusterResources: [String: Double] { worker.nodeResources }

    /// Every node the cluster has had, alive or dead, in the order they joined (Ray's `ray.nodes()`).
    public func nodes() async throws -> [NodeInfo] {
        do {
            return try await gcs.nodes().map(NodeInfo.init)
        } catch {
            throw RayError(.connection, "the GCS at \(gcsAddress) did not list the nodes", cause: "\(error)")
        }
    }

    /// The node this driver (or worker) runs on.
    public var nodeID: NodeID { worker.nodeID }

    /// The node of the calling process: in a task or actor, the node it runs on (Ray's
    /// `get_runtime_context().get_node_id()`); nil outside a Ray process.
    public static var currentNodeID: NodeID? { currentWorker?.nodeID }

    /// The node's object store: bytes in use and objects in it.
    public func objectStoreUsage() async throws -> (usedBytes: Int, objects: Int) {
        let stats = try await worker.nodeStats()
        return (Int(stats.objectStoreUsed), Int(stats.numObjects))
    }

    /// What the node's raylet reports: worker processes (all, idle) and resources available.
    public func nodeStats() async throws -> (workers: Int, idleWorkers: Int, available: [String: Double]) {
        let stats = try await worker.nodeStats()
        return (Int(stats.numWorkers), Int(stats.numIdleWorkers), stats.resourcesAvailable)
    }

    /// Objects this process references (owned or borrowed).
    public var objectCount: Int { worker.objectCount }

    // MARK: workers

    /// Runs this process as a worker if the raylet started it as one (`RAY_WORKER_MODE`): serves
    /// tasks until the raylet stops it, then exits. Returns (false) in a driver.
    static func runWorkerIfLaunchedAsOne(functions: [any AnyRemoteFunction]) async -> Bool {
        let environment = ProcessInfo.processInfo.environment
        guard environment["RAY_WORKER_MODE"] == "1" else { return false }
        // Workers' output goes to a pipe the raylet reads: flush print() at each line, as a terminal would.
        setvbuf(stdout, nil, _IOLBF, 0)
        if let directory = environment["RAY_WORKER_WORKING_DIR"] { _ = FileManager.default.changeCurrentDirectoryPath(directory) }
        do {
            guard let jobHex = environment["RAY_JOB_ID"], let workerHex = environment["RAY_WORKER_ID"],
                let raylet = environment["RAY_NODE_MANAGER_ADDRESS"]
            else { throw RayError(.system, "a worker needs RAY_JOB_ID, RAY_WORKER_ID and RAY_NODE_MANAGER_ADDRESS") }
            var configuration = CoreWorker.Configuration(
                mode: .worker, jobID: try JobID(hex: jobHex), workerID: try WorkerID(hex: workerHex),
                rayletAddress: raylet, gcsAddress: environment["RAY_GCS_ADDRESS"] ?? "")
            var table: [String: TaskFunction] = [:]
            for function in functions { table[function.name] = function._body }
            configuration.functions = table
            configuration.actorHost = makeActorSystem
            // Tasks that submit tasks need `current` from their first moment.
            configuration.willServe = { worker in current.withLock { $0 = worker } }
            _ = try await CoreWorker.connect(configuration)
        } catch {
            FileHandle.standardError.write(Data("worker failed to start: \(error)\n".utf8))
            exit(1)
        }
        // A worker lives as long as the process that started it: exit when it is gone (checked on the
        // core worker's thread, so a worker whose tasks keep the pool busy still notices), within
        // 100 ms: before the GCS's health checks call its node dead (by default 5 misses 3 s apart),
        // so the callers of an actor on a dead node do not reach a worker that outlived its raylet.
        let parent = environment["RAY_RAYLET_PID"].flatMap { pid_t($0) } ?? getppid()
        await withTaskExecutorPreference(ThreadExecutor.coreWorker) { () async -> Never in
            while true {
                try? await ThreadExecutor.coreWorker.sleep(for: .milliseconds(100))
                if getppid() != parent { exit(0) }
            }
        }
    }

    /// The actor system of this process: it hosts the actors pushed to a worker, and decodes actor
    /// handles inside values (arguments, results) as proxies.
    @Sendable static func makeActorSystem(_ worker: CoreWorker) -> any ActorHost {
        let system = RayActorSystem(worker: worker)
        BinaryDecoder.userInfo[.actorSystemKey] = system
        return system
    }

    /// The node a driver joins: the one at `RAY_NODE_IP_ADDRESS` if set, else one whose address is
    /// this machine's (the head first), else the head, else any live node.
    static func localNode(_ nodes: [Ray_Rpc_GcsNodeInfo]) -> Ray_Rpc_GcsNodeInfo? {
        let alive = nodes.filter { $0.state == .alive }.sorted { $0.isHeadNode && !$1.isHeadNode }
        if let ip = ProcessInfo.processInfo.environment["RAY_NODE_IP_ADDRESS"], !ip.isEmpty {
            return alive.first { $0.nodeManagerAddress == ip }
        }
        let mine = localAddresses()
        func isMine(_ address: String) -> Bool { address.hasPrefix("127.") || mine.contains(address) }
        return alive.first { isMine($0.nodeManagerAddress) } ?? alive.first
    }

    /// This machine's IPv4 addresses (in this network namespace).
    static func localAddresses() -> Set<String> {
        var result: Set<String> = []
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return result }
        defer { freeifaddrs(list) }
        var cursor = list
        while let entry = cursor {
            if let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) {
                var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                if getnameinfo(address, socklen_t(MemoryLayout<sockaddr_in>.size), &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 {
                    result.insert(String(cString: host))
                }
            }
            cursor = entry.pointee.ifa_next
        }
        return result
    }

    private static func currentExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}

/// The error a task raised, as its caller sees it: Ray's error kind, the remote error's Swift type
/// and message, and the function's name.
public typealias RayTaskError = TaskFailure
