import Foundation
import RayAutoscaling
import RayCommon
import RayGCSClient
import RayProtos
import RayRPC
import RayScheduling
import RayServices

/// The autoscaler on the head (Ray's monitor): every round it reads the cluster from the GCS (nodes,
/// their resources and idle times, queued work, waiting placement groups, `requestResources`), asks
/// ``ScalingPolicy`` what to launch and end, launches through the provider, drains idle nodes before
/// ending them, and leaves its view in the GCS's KV for `ray status`.
public actor Monitor {
    public struct Options: Sendable {
        /// Time between rounds (Ray: 5 s; here the GCS is a loopback call away).
        public var interval: Duration = .milliseconds(500)
        /// A launched node that has not joined the cluster by then failed to launch.
        public var launchTimeout: Duration = .seconds(60)
        public var backoff = LaunchBackoff()
        public init() {}
    }

    let gcs: GCSClient
    let config: ClusterConfig
    let provider: any NodeProvider
    var options: Options
    private var launchedAt: [String: ContinuousClock.Instant] = [:]
    private var joined: Set<String> = []
    private var stopped: [AutoscalerReport.Failure] = []
    private var launchedCount = 0
    private var terminatedCount = 0
    /// What the last round decided (for tests and logs).
    public private(set) var lastDecision = ScalingDecision()

    public init(gcs: GCSClient, config: ClusterConfig, provider: any NodeProvider, options: Options = Options()) {
        self.gcs = gcs
        self.config = config
        self.provider = provider
        self.options = options
    }

    /// Rounds until cancelled; a round that fails (the GCS unreachable) is logged and the next tries again.
    public func run(log: @escaping @Sendable (String) -> Void) async {
        while !Task.isCancelled {
            do { try await step(log: log) } catch { log("autoscaler round failed: \(error)") }
            try? await Task.sleep(for: options.interval)
        }
    }

    /// One round.
    public func step(log: @escaping @Sendable (String) -> Void = { _ in }) async throws {
        let now = ContinuousClock.now
        let infos = try await gcs.nodes().filter { $0.state == .alive }
        let reports = Dictionary(try await gcs.resourceUsage().map { ($0.nodeID, $0) }, uniquingKeysWith: { a, _ in a })
        let groups = try await gcs.placementGroups()
        let requested = try await gcs.kv().get(ResourceRequest.key).map(ResourceRequest.decode) ?? []
        let instances = try await provider.nodes()

        var byIP: [String: Ray_Rpc_GcsNodeInfo] = [:]
        for info in infos { byIP[info.nodeManagerAddress] = info }
        var snapshots: [NodeSnapshot] = []
        var reportNodes: [AutoscalerReport.Node] = []
        var pending: [AutoscalerReport.Pending] = []
        var managed: Set<Data> = []
        var failedNow: [String] = []
        for instance in instances {
            if case .failed(let reason) = instance.status {
                options.backoff.failed(instance.type, reason: reason, at: now)
                record("LaunchFailed", instance, reason)
                failedNow.append(instance.id)
                log("node \(instance.id) (\(instance.type)) failed to launch: \(reason)")
                continue
            }
            if let info = byIP[instance.ip], !info.isHeadNode {
                managed.insert(info.nodeID)
                if joined.insert(instance.id).inserted { options.backoff.succeeded(instance.type) }
                let snapshot = Self.snapshot(info, reports[info.nodeID], id: instance.id, type: instance.type, isHead: false)
                snapshots.append(snapshot)
                reportNodes.append(Self.reportNode(info, reports[info.nodeID], instance: instance.id, type: instance.type))
            } else if joined.contains(instance.id) {
                // It was in the cluster and left it by itself (its raylet died).
                record("NodeTerminated", instance, "left the cluster")
                failedNow.append(instance.id)
            } else if let since = launchedAt[instance.id], now - since > options.launchTimeout {
                let reason = "did not join the cluster within \(options.launchTimeout)"
                options.backoff.failed(instance.type, reason: reason, at: now)
                record("LaunchFailed", instance, reason)
                failedNow.append(instance.id)
            } else {
                let type = config.nodeTypes[instance.type]
                snapshots.append(NodeSnapshot(id: instance.id, type: instance.type, status: .pending,
                                              total: ResourceSet(type?.resources ?? [:]), available: ResourceSet(type?.resources ?? [:])))
                pending.append(.init(instanceID: instance.id, type: instance.type, ip: instance.ip,
                                     status: instance.status == .launching ? "launching" : "starting"))
            }
        }
        if !failedNow.isEmpty {
            for id in failedNow { launchedAt[id] = nil; joined.remove(id) }
            try? await provider.terminate(failedNow)
        }
        for info in infos where !managed.contains(info.nodeID) {
            let type = info.isHeadNode ? config.headNodeType : "node_\(info.nodeID.hexString)"
            snapshots.append(Self.snapshot(info, reports[info.nodeID], id: info.nodeID.hexString,
                                           type: info.isHeadNode ? config.headNodeType : nil, isHead: info.isHeadNode))
            reportNodes.append(Self.reportNode(info, reports[info.nodeID], instance: info.nodeID.hexString, type: type))
        }

        let demand = Self.demand(reports: reports.values, groups: groups, requested: requested)
        let decision = ScalingPolicy.decide(config: config, nodes: snapshots, demand: demand, blocked: options.backoff.blocked(at: now))
        lastDecision = decision

        for (name, count) in decision.launch.sorted(by: { $0.key < $1.key }) {
            guard let type = config.nodeTypes[name] else { continue }
            do {
                let ids = try await provider.launch(type, count: count)
                for id in ids { launchedAt[id] = now }
                launchedCount += ids.count
                log("launching \(count) \(name) node(s): \(ids.joined(separator: ", "))")
            } catch {
                options.backoff.failed(name, reason: "\(error)", at: now)
                stopped.append(.init(kind: "LaunchFailed", type: name, instanceID: "", reason: "\(error)", time: Date().timeIntervalSince1970))
                log("launching \(name) failed: \(error)")
            }
        }
        for termination in decision.terminate {
            guard let instance = instances.first(where: { $0.id == termination.id }), let info = byIP[instance.ip] else { continue }
            let (accepted, why) = await drain(info, reason: termination.reason)
            guard accepted else {
                log("not ending \(termination.id): \(why)")
                continue
            }
            do {
                try await provider.terminate([termination.id])
                terminatedCount += 1
                launchedAt[termination.id] = nil
                joined.remove(termination.id)
                log("ended \(termination.id) (\(termination.type)): \(termination.reason)")
            } catch {
                log("ending \(termination.id) failed: \(error)")
            }
        }

        let wall = Date().timeIntervalSince1970
        stopped.removeAll { wall - $0.time > 600 }
        let report = AutoscalerReport(
            clusterName: config.clusterName, time: wall, nodes: reportNodes, pending: pending, failures: stopped,
            resourceRequests: requested, infeasible: decision.infeasible.map(\.amounts),
            launched: launchedCount, terminated: terminatedCount)
        _ = try await gcs.kv().put(ResourceRequest.statusKey, try JSONEncoder().encode(report))
    }

    private func record(_ kind: String, _ instance: ProviderNode, _ reason: String) {
        stopped.append(.init(kind: kind, type: instance.type, instanceID: instance.id, reason: reason, time: Date().timeIntervalSince1970))
    }

    /// Asks the node's raylet to take no new work (refused if it is not idle at that moment).
    private func drain(_ info: Ray_Rpc_GcsNodeInfo, reason: String) async -> (Bool, String) {
        do {
            let channel = try RPCChannel(host: info.nodeManagerAddress, port: Int(info.nodeManagerPort))
            var request = Ray_Rpc_DrainRayletRequest()
            request.reason = .idleTermination
            request.reasonMessage = reason
            let reply = try await channel.unary(NodeManagerMethods.drainRaylet, request, options: CallOptions(timeout: .seconds(5)))
            return (reply.isAccepted, reply.rejectionReasonMessage)
        } catch {
            return (false, "its raylet did not answer the drain: \(error)")
        }
    }

    static func snapshot(_ info: Ray_Rpc_GcsNodeInfo, _ report: Ray_Rpc_ResourcesData?, id: String, type: String?, isHead: Bool) -> NodeSnapshot {
        let total = ResourceSet(report?.resourcesTotal ?? info.resourcesTotal)
        let available = report.map { ResourceSet($0.resourcesAvailable) } ?? total
        let idle: Duration? = (report?.isIdle ?? false) ? .milliseconds(report!.idleDurationMs) : nil
        return NodeSnapshot(id: id, type: type, status: report?.isDraining == true ? .draining : .running,
                            total: total, available: available, idle: idle, isHead: isHead)
    }

    static func reportNode(_ info: Ray_Rpc_GcsNodeInfo, _ report: Ray_Rpc_ResourcesData?, instance: String, type: String) -> AutoscalerReport.Node {
        let status = report?.isDraining == true ? "DRAINING" : report?.isIdle == true ? "IDLE" : "RUNNING"
        return .init(nodeID: info.nodeID.hexString, instanceID: instance, type: type, ip: info.nodeManagerAddress,
                     status: status, idleMs: report?.idleDurationMs ?? 0)
    }

    /// Queued work by shape (a placement group's own leases aside: the group is the demand), waiting
    /// groups' unplaced bundles, and the requested bundles.
    static func demand(reports: some Sequence<Ray_Rpc_ResourcesData>, groups: [Ray_Rpc_PlacementGroupTableData],
                       requested: [[String: Double]]) -> Demand {
        var demand = Demand()
        for report in reports {
            for entry in report.resourceLoad where entry.count > 0 {
                guard !entry.shape.keys.contains(where: BundleResources.isGroupResource) else { continue }
                demand.shapes[ResourceSet(entry.shape), default: 0] += Int(entry.count)
            }
        }
        for group in groups where group.state == .pending || group.state == .rescheduling {
            let bundles = group.bundles.filter { $0.nodeID.isEmpty }.map { ResourceSet($0.unitResources) }
            guard !bundles.isEmpty else { continue }
            let strategy: PlacementStrategy = switch group.strategy {
            case .spread: .spread
            case .strictPack: .strictPack
            case .strictSpread: .strictSpread
            default: .pack
            }
            demand.gangs.append(GangDemand(id: group.placementGroupID.hexString, bundles: bundles, strategy: strategy))
        }
        demand.constraints = requested.map(ResourceSet.init).filter { !$0.isEmpty }
        return demand
    }
}

extension Data {
    var hexString: String { Hex.string(self) }
}
