#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import RayCommon
import RayGCSClient
import RayObjectStore
import RayProtos
import RayRPC
import RayServices

/// The per-node daemon. So far: it creates the node's shared-memory object store, serves its
/// node-manager port and registers the node, with its resources, in the GCS; on shutdown it
/// unregisters. Worker leases and the worker pool come next (see the Core issue's notes).
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
        public init() {}
    }

    public let nodeID: NodeID
    public var port: Int { server.port }
    public let gcsAddress: String
    /// The node's shared-memory object store.
    public let objectStore: ObjectStore
    private let server: RPCServer
    private let gcs: GCSClient

    /// Starts serving and registers with the GCS at `gcsAddress` (waiting up to `registerTimeout` for it).
    public init(gcsAddress: String, options: Options, registerTimeout: Duration = .seconds(10)) async throws {
        let nodeID = NodeID.random()
        self.nodeID = nodeID
        self.gcsAddress = gcsAddress
        let storeBytes = options.objectStoreMemory ?? Self.defaultObjectStoreMemory()
        self.objectStore = try ObjectStore(
            name: options.objectStoreName ?? "swift-ray-\(nodeID.hex.prefix(16))", capacity: storeBytes)
        var router = RPCRouter()
        HealthMethods.register(on: &router)
        self.server = try RPCServer(host: options.host, port: options.port, router: router)
        self.gcs = try GCSClient(address: gcsAddress, timeout: registerTimeout)
        var node = Ray_Rpc_GcsNodeInfo()
        node.nodeID = Data(nodeID.bytes)
        node.nodeManagerAddress = options.host
        node.nodeManagerPort = Int32(server.port)
        node.nodeName = options.nodeName.isEmpty ? options.host : options.nodeName
        node.isHeadNode = options.isHead
        node.resourcesTotal = options.resources
        node.resourcesTotal["object_store_memory"] = Double(objectStore.capacity)
        node.labels = options.labels
        node.labels["ray.io/object-store"] = objectStore.region.name
        do {
            try await gcs.register(node: node)
        } catch {
            await server.shutdown(grace: .zero)
            throw RayError(.connection, "the raylet could not register with the GCS at \(gcsAddress)", cause: "\(error)")
        }
    }

    /// Unregisters from the GCS (best effort, a short deadline) and stops serving.
    public func shutdown(reason: String = "the raylet stopped") async {
        try? await gcs.unregister(node: nodeID, reason: reason)
        await server.shutdown(grace: .seconds(1))
    }

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
