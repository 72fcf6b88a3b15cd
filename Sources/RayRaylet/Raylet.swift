#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import RayCommon
import RayConcurrency
import RayGCSClient
import RayJobs
import RayObjectStore
import RayProtos
import RayRPC
import RayScheduling
import RayServices
import Synchronization

extension ThreadExecutor {
    /// The raylet's thread: its node manager (leases, the worker pool, timers), handlers and reports to
    /// the GCS run here, never waiting for a thread of Swift's global pool (a driver's own code may
    /// keep every one of those busy while its embedded raylet serves its workers). Shared by the
    /// raylets of a process, as Ray's raylet runs on one event loop.
    public static let raylet = ThreadExecutor(name: "ray-raylet")
}

/// The per-node daemon: it creates the node's shared-memory object store, serves the node manager
/// (client registration, worker leases, the worker pool, object creation and deletion, node stats)
/// and registers the node, with its resources, in the GCS; on shutdown it stops its workers and
/// unregisters.
public final class Raylet: Sendable {
    public struct Options: Sendable {
        public var host = "127.0.0.1"
        public var port = 0
        public var nodeName = ""
        public var isHead = false
        /// Resources the node offers, as Ray names them ("CPU", "memory", custom ones).
        public var resources: [String: Double] = [:]
        public var labels: [String: String] = [:]
        /// Bytes of the node's object store; nil: `RAY_object_store_memory`, else 30% of memory, capped
        /// by what /dev/shm can hold (as Ray).
        public var objectStoreMemory: Int?
        /// The name of the store's file in /dev/shm; nil: derived from the node ID.
        public var objectStoreName: String?
        /// Where worker log files go; nil: a fresh folder under the temp directory.
        public var logDirectory: String?
        /// Idle workers above one per CPU are stopped after this long (Ray: 1 s).
        public var idleWorkerTimeout: Duration = .seconds(1)
        /// Bytes the object manager may have outbound at once (nil: `object_manager_max_bytes_in_flight`).
        public var objectManagerMaxBytesInFlight: Int?
        /// The object manager's port (0: a free one).
        public var objectManagerPort = 0
        /// Ports the node's workers bind (`--min-worker-port`…`--max-worker-port`); nil: any free one.
        public var workerPorts: ClosedRange<Int>?
        public init() {}
    }

    public let nodeID: NodeID
    public var port: Int { server.port }
    public let gcsAddress: String
    /// The node's shared-memory object store.
    public let objectStore: ObjectStore
    private let server: RPCServer
    /// The object manager's own server (`--object-manager-port`): other raylets pull objects there.
    private let objectServer: RPCServer
    public var objectManagerPort: Int { objectServer.port }
    private let gcs: GCSClient
    let nodeManager: NodeManager
    /// Sends the node manager's reports (workers, resource view) to the GCS, in order.
    private let reporter: Task<Void, Never>
    /// Applies the GCS's changes (nodes, their resources, jobs ending) to the node manager.
    private let viewFollower = Mutex<Task<Void, Never>?>(nil)

    /// Starts serving and registers with the GCS at `gcsAddress` (waiting up to `registerTimeout` for it).
    public init(gcsAddress: String, options: Options, registerTimeout: Duration = .seconds(10)) async throws {
        let nodeID = NodeID.random()
        self.nodeID = nodeID
        self.gcsAddress = gcsAddress
        let storeBytes = options.objectStoreMemory ?? Self.defaultObjectStoreMemory()
        Self.removeStaleStores()
        self.objectStore = try ObjectStore(
            name: options.objectStoreName ?? Self.defaultStoreName(nodeID), capacity: storeBytes)
        let logDirectory = options.logDirectory ?? (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/swift-ray-logs-\(nodeID.hex.prefix(8))"
        let cpus = max(1, Int(options.resources["CPU"] ?? 1))
        // The objects each client created in the store, deleted when the client is gone.
        let owned = OwnedObjects(localNode: nodeID)
        let store = objectStore
        let gcs = try GCSClient(address: gcsAddress, timeout: registerTimeout)
        self.gcs = gcs
        let labels = Self.labels(options.labels, nodeID: nodeID)
        self.nodeManager = NodeManager(
            nodeID: nodeID, resources: options.resources, labels: labels,
            settings: .init(
                logDirectory: logDirectory, softLimit: cpus, idleWorkerTimeout: options.idleWorkerTimeout,
                maxStartingWorkers: cpus, gcsAddress: gcsAddress, nodeManagerAddress: "",
                objectStoreName: objectStore.region.name, host: options.host, workerPorts: options.workerPorts),
            storeUsed: { Int64(store.usedBytes) },
            jobInfo: { jobID in
                let raw = Data(jobID.bytes)
                return try? await gcs.jobs().first { $0.jobID == raw }
            },
            groupInfo: { id in try? await gcs.placementGroup(id) },
            materializePackage: { uri in
                // Beside the node's logs, in its session: <session>/runtime_resources/working_dir_files.
                let session = URL(fileURLWithPath: logDirectory).deletingLastPathComponent()
                let root = session.appendingPathComponent("runtime_resources/working_dir_files").path
                return try await RuntimeEnvPackage.materialize(uri, store: JobStore(gcs: gcs), under: root)
            },
            clientGone: { client in
                for id in owned.removeAll(of: client) { store.delete(id) }
            })
        var router = RPCRouter()
        HealthMethods.register(on: &router)
        let objects = ObjectManager(store: objectStore, nodeID: nodeID,
                                    maxBytesInFlight: options.objectManagerMaxBytesInFlight ?? RayConfig()[RayConfig.objectManagerMaxBytesInFlight])
        Self.registerNodeManager(on: &router, nodeManager: nodeManager, store: objectStore, objects: objects, owned: owned, nodeID: nodeID,
                                  logDirectory: logDirectory)
        var configuration = RPCServer.Configuration()
        configuration.executor = .raylet
        self.server = try RPCServer(host: options.host, port: options.port, router: router, configuration: configuration)
        var objectRouter = RPCRouter()
        HealthMethods.register(on: &objectRouter)
        objectRouter.registerRawServerStreaming(path: NodeManagerMethods.pullObject.path, request: Ray_Rpc_PullObjectRequest.self) { request, writer, _ in
            try await objects.serve(request, to: writer)
        }
        do {
            self.objectServer = try RPCServer(host: options.host, port: options.objectManagerPort, router: objectRouter, configuration: configuration)
        } catch {
            await server.shutdown(grace: .zero)
            throw RayError(.connection, "the object manager cannot listen on \(options.host):\(options.objectManagerPort)", cause: "\(error)")
        }
        let rayletAddress = "\(options.host):\(server.port)"
        let gcsLookup = self.gcs
        objects.lookUp = { node in
            (try? await gcsLookup.nodes())?.first { $0.nodeID == node && $0.state == .alive }
        }
        await nodeManager.setNodeManagerAddress(rayletAddress)
        await nodeManager.setArgumentPuller { [nodeID] args, deadline in
            await objects.pullArguments(args, deadline: deadline) { arg, here in
                guard let id = try? ObjectID(bytes: arg.objectID), let owner = try? WorkerID(bytes: arg.ownerAddress.workerID) else { return }
                owned.add(id, owner: owner, node: arg.ownerAddress.nodeID)
                var request = Ray_Rpc_AddObjectLocationRequest()
                request.objectID = arg.objectID
                request.location.nodeID = Data(nodeID.bytes)
                request.location.rayletAddress = rayletAddress
                request.location.offset = Int64(here.offset)
                request.location.size = Int64(here.size)
                objects.tellOwner(arg.ownerAddress, request)
            }
        }
        var node = Ray_Rpc_GcsNodeInfo()
        node.nodeID = Data(nodeID.bytes)
        node.nodeManagerAddress = options.host
        node.nodeManagerPort = Int32(server.port)
        node.nodeName = options.nodeName.isEmpty ? options.host : options.nodeName
        node.isHeadNode = options.isHead
        node.resourcesTotal = options.resources
        node.resourcesTotal["object_store_memory"] = Double(objectStore.capacity)
        node.labels = labels
        node.objectManagerPort = Int32(objectServer.port)
        node.labels["ray.io/object-store"] = objectStore.region.name
        let gcsClient = self.gcs
        let nodeManager = self.nodeManager
        reporter = Task(executorPreference: ThreadExecutor.raylet) {
            for await report in nodeManager.gcsReports {
                switch report {
                case .workerStarted(let worker): try? await gcsClient.addWorker(worker)
                case .workerDied(let worker): try? await gcsClient.reportWorkerFailure(worker)
                case .resources(let resources):
                    do { try await gcsClient.reportResources(resources) } catch { await nodeManager.resourceReportFailed() }
                case .jobFinished(let jobID): try? await gcsClient.markJobFinished(jobID)
                }
            }
        }
        do {
            // Subscribed before the snapshot, so no change falls between the two.
            let changes = try await gcs.subscribe([.gcsNodeInfoChannel, .gcsResourceViewChannel, .gcsJobChannel])
            try await gcs.register(node: node)
            for info in try await gcs.nodes() where info.state == .alive {
                objects.learn(info)
                await nodeManager.applyNode(info)
            }
            for report in try await gcs.resourceUsage() { await nodeManager.applyResources(report) }
            let store = objectStore
            let follower = Task(executorPreference: ThreadExecutor.raylet) {
                do {
                    for try await message in changes {
                        switch message.innerMessage {
                        case .nodeInfoMessage(let info):
                            objects.learn(info)
                            // Owners on a dead node died with it: their copies here go.
                            if info.state == .dead { for id in owned.removeAll(ofNode: info.nodeID) { store.delete(id) } }
                            await nodeManager.applyNode(info)
                        case .resourcesMessage(let report): await nodeManager.applyResources(report)
                        case .jobMessage(let job) where job.isDead:
                            if let id = try? JobID(bytes: job.jobID) { await nodeManager.jobEnded(id) }
                        default: break
                        }
                    }
                } catch {}
            }
            viewFollower.withLock { $0 = follower }
        } catch {
            reporter.cancel()
            await nodeManager.shutdown()
            await server.shutdown(grace: .zero)
            await objectServer.shutdown(grace: .zero)
            throw RayError(.connection, "the raylet could not register with the GCS at \(gcsAddress)", cause: "\(error)")
        }
    }

    /// Unregisters from the GCS (best effort, a short deadline) and stops serving.
    public func shutdown(reason: String = "the raylet stopped") async {
        await nodeManager.shutdown()
        reporter.cancel()
        viewFollower.withLock { $0?.cancel() }
        try? await gcs.unregister(node: nodeID, reason: reason)
        await server.shutdown(grace: .seconds(1))
        await objectServer.shutdown(grace: .zero)
    }

    /// `swift-ray-<pid>-<node>`: the raylet's pid in the name lets a later raylet remove the store of
    /// one that was killed before it could (``removeStaleStores()``).
    static func defaultStoreName(_ nodeID: NodeID) -> String { "swift-ray-\(getpid())-\(nodeID.hex.prefix(12))" }

    /// Removes /dev/shm stores named by ``defaultStoreName(_:)`` whose raylet process is gone (a
    /// killed embedded cluster cannot unlink its own). Returns the names removed.
    @discardableResult
    public static func removeStaleStores() -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm") else { return [] }
        var removed: [String] = []
        for name in names where name.hasPrefix("swift-ray-") {
            let parts = name.split(separator: "-")
            guard parts.count == 4, let pid = pid_t(parts[2]), pid > 0 else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH, unlink("/dev/shm/\(name)") == 0 { removed.append(name) }
        }
        return removed
    }

    /// The node's labels: Ray's defaults (`ray.io/node-id`, and as Ray sets them from the environment
    /// `ray.io/market-type` ← `RAY_NODE_MARKET_TYPE`, `ray.io/node-group` ← `RAY_NODE_TYPE_NAME`,
    /// `ray.io/availability-region` ← `RAY_NODE_REGION`, `ray.io/availability-zone` ← `RAY_NODE_ZONE`),
    /// under the ones it was given; the node ID always wins.
    public static func labels(_ given: [String: String], nodeID: NodeID,
                              environment: [String: String] = ProcessInfo.processInfo.environment) -> [String: String] {
        var labels: [String: String] = [:]
        let fromEnvironment = ["ray.io/market-type": "RAY_NODE_MARKET_TYPE", "ray.io/node-group": "RAY_NODE_TYPE_NAME",
                               "ray.io/availability-region": "RAY_NODE_REGION", "ray.io/availability-zone": "RAY_NODE_ZONE"]
        for (label, variable) in fromEnvironment {
            if let value = environment[variable], !value.isEmpty { labels[label] = value }
        }
        labels.merge(given) { _, given in given }
        labels[Labels.nodeID] = nodeID.hex
        return labels
    }

    /// The pids of the node's worker processes.
    public func workerPIDs() async -> [pid_t] { await nodeManager.workerPIDs() }

    /// `RAY_object_store_memory` if set and positive, else 30% of memory, at most 95% of /dev/shm.
    public static func defaultObjectStoreMemory() -> Int {
        let configured = RayConfig()[RayConfig.objectStoreMemory]
        if configured > 0 { return configured }
        var bytes = Int(Double(ProcessInfo.processInfo.physicalMemory) * 0.3)
        var info = statvfs()
        if statvfs("/dev/shm", &info) == 0 {
            let shm = Int(info.f_bsize) * Int(info.f_bavail)
            bytes = min(bytes, Int(Double(shm) * 0.95))
        }
        return max(bytes, 64 * 1024 * 1024)
    }

    /// The resources of this machine as Ray counts them by default: every CPU, 70% of memory for
    /// tasks, 30% for the object store, and `node:<ip>`.
    public static func defaultResources(host: String, numCPUs: Int?, isHead: Bool) -> [String: Double] {
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        var resources: [String: Double] = [
            "CPU": Double(numCPUs ?? ProcessInfo.processInfo.activeProcessorCount),
            "memory": (memory * 0.7).rounded(),
            "object_store_memory": (memory * 0.3).rounded(),
            "node:\(host)": 1,
        ]
        if isHead { resources["node:__internal_head__"] = 1 }
        return resources
    }
}
