import RayCommon

/// Where a task or actor may run (Ray's `scheduling_strategy`).
public enum SchedulingStrategy: Sendable, Hashable {
    /// Ray's "DEFAULT", the hybrid policy: the local node while it is lightly loaded, then the least
    /// loaded node.
    case `default`
    /// Ray's "SPREAD": round robin over the nodes that can take it.
    case spread
    /// Ray's `NodeAffinitySchedulingStrategy`: that node, waiting there while it is busy; if it is
    /// gone or could never hold the request, fail (`soft: false`) or use the default policy
    /// (`soft: true`).
    case nodeAffinity(NodeID, soft: Bool)
}

/// What a submitter asks the scheduler for: resources, a strategy and a label selector.
public struct SchedulingRequest: Sendable, Hashable {
    public var resources: ResourceSet
    public var strategy: SchedulingStrategy
    public var labelSelector: LabelSelector

    public init(resources: ResourceSet, strategy: SchedulingStrategy = .default, labelSelector: LabelSelector = LabelSelector()) {
        self.resources = resources
        self.strategy = strategy
        self.labelSelector = labelSelector
    }
}

/// The scheduler's answer for one request.
public enum SchedulingDecision: Sendable, Hashable {
    /// Run it there now: the node has the resources free.
    case run(on: NodeID)
    /// Nothing can take it now, but that node could once resources free up: queue it there.
    case queue(on: NodeID)
    /// No node in the cluster could ever run it (resources or labels); it waits for one that can to
    /// join. The message names what it needs.
    case infeasible(String)
    /// It can never run as asked (hard affinity to a node that is gone or cannot hold it).
    case unschedulable(String)
}

/// Ray's scheduling policies as pure functions of a ``ClusterView``: no processes, no clocks.
/// Each raylet keeps one (the spread policy's round-robin position is its only state).
public struct SchedulingPolicy: Sendable {
    /// A node whose critical utilization is below this counts as empty (Ray's
    /// `scheduler_spread_threshold`, 0.5): the hybrid policy packs the local node up to it.
    public var spreadThreshold: Double
    /// The hybrid policy picks at random among the best `max(topKAbsolute, nodes × topKFraction)`
    /// nodes (Ray's `scheduler_top_k_fraction` 0.2 and `scheduler_top_k_absolute` 1), unless the
    /// local node is as good as the best.
    public var topKFraction: Double
    public var topKAbsolute: Int
    /// Work that needs no GPU tries nodes without GPUs first (Ray's `scheduler_avoid_gpu_nodes`).
    public var avoidGPUNodes: Bool
    /// Where the next SPREAD request starts looking (Ray keeps one such index per raylet).
    public private(set) var spreadIndex = 0
    /// Picks an index below its argument (the top-k choice); random by default.
    public var pick: @Sendable (Int) -> Int = { Int.random(in: 0..<$0) }

    public init(spreadThreshold: Double = 0.5, topKFraction: Double = 0.2, topKAbsolute: Int = 1, avoidGPUNodes: Bool = true) {
        self.spreadThreshold = spreadThreshold
        self.topKFraction = topKFraction
        self.topKAbsolute = topKAbsolute
        self.avoidGPUNodes = avoidGPUNodes
    }

    /// Decides where `request` goes, seen from `local` (the node asked).
    public mutating func decide(_ request: SchedulingRequest, in view: ClusterView, local: NodeID) -> SchedulingDecision {
        switch request.strategy {
        case .default:
            return hybrid(request, in: view, local: local)
        case .spread:
            return spread(request, in: view)
        case .nodeAffinity(let target, let soft):
            if let node = view[target], node.acceptsWork, node.isFeasible(request.resources),
               request.labelSelector.matches(node.labels) {
                return node.isAvailable(request.resources) ? .run(on: target) : .queue(on: target)
            }
            if soft { return hybrid(request, in: view, local: local) }
            return .unschedulable("The node specified via NodeAffinitySchedulingStrategy doesn't exist any more or is infeasible, and soft=False was specified. (node \(target.hex), \(request.resources)\(describe(request.labelSelector)))")
        }
    }

    /// The nodes that could ever run `request`, in the cluster's fixed order.
    public func feasibleNodes(_ request: SchedulingRequest, in view: ClusterView) -> [NodeID] {
        view.orderedIDs.filter { id in
            let node = view[id]!
            return node.acceptsWork && node.isFeasible(request.resources) && request.labelSelector.matches(node.labels)
        }
    }

    /// The highest fraction in use of CPU, memory and object-store memory (what Ray's hybrid policy
    /// calls a node's critical resource utilization); resources the node lacks do not count.
    public static func criticalUtilization(_ node: NodeResources) -> Double {
        var highest = 0.0
        for name in ["CPU", "memory", "object_store_memory"] {
            let total = node.total[name]
            guard total > 0 else { continue }
            highest = max(highest, 1 - node.available[name] / total)
        }
        return highest
    }

    // MARK: policies

    /// Ray's hybrid policy: score each node that could run it by critical utilization, anything
    /// below the spread threshold counting as zero; among nodes that can run it now (else among those
    /// that could later) the local node wins if it scores as well as the best, else one of the best
    /// k at random (ties in the cluster's order). So work packs onto the local node until it is half
    /// used, then spreads to the least loaded node. Work that needs no GPU first tries the nodes
    /// without GPUs that can run it now.
    private func hybrid(_ request: SchedulingRequest, in view: ClusterView, local: NodeID) -> SchedulingDecision {
        if avoidGPUNodes, request.resources["GPU"] == 0 {
            if case .run(let node)? = best(request, in: view, local: local, availableOnly: true, where: { $0.total["GPU"] == 0 }) {
                return .run(on: node)
            }
        }
        return best(request, in: view, local: local, availableOnly: false, where: { _ in true }) ?? infeasible(request, in: view)
    }

    private func best(_ request: SchedulingRequest, in view: ClusterView, local: NodeID, availableOnly: Bool,
                      where include: (NodeResources) -> Bool) -> SchedulingDecision? {
        var available: [(id: NodeID, score: Double)] = []
        var feasible: [(id: NodeID, score: Double)] = []
        for id in view.orderedIDs {
            let node = view[id]!
            guard include(node), node.acceptsWork, node.isFeasible(request.resources), request.labelSelector.matches(node.labels)
            else { continue }
            var score = Self.criticalUtilization(node)
            if score < spreadThreshold { score = 0 }
            if node.isAvailable(request.resources) { available.append((id, score)) } else { feasible.append((id, score)) }
        }
        func choose(_ candidates: [(id: NodeID, score: Double)]) -> NodeID? {
            // Stable: equal scores keep the cluster's order.
            let ranked = candidates.enumerated().sorted { ($0.element.score, $0.offset) < ($1.element.score, $1.offset) }.map(\.element)
            guard let first = ranked.first else { return nil }
            if let mine = ranked.first(where: { $0.id == local }), mine.score <= first.score { return local }
            let k = max(topKAbsolute, Int(Double(view.nodes.count) * topKFraction), 1)
            return ranked[min(pick(min(k, ranked.count)), ranked.count - 1)].id
        }
        if let node = choose(available) { return .run(on: node) }
        if !availableOnly, let node = choose(feasible) { return .queue(on: node) }
        return nil
    }

    /// Ray's spread policy: round robin over the nodes in the cluster's order, from where the last
    /// request left off; a node that can run it now first, else one that could later.
    private mutating func spread(_ request: SchedulingRequest, in view: ClusterView) -> SchedulingDecision {
        let order = view.orderedIDs
        guard !order.isEmpty else { return infeasible(request, in: view) }
        var firstFeasible: NodeID?
        for step in 0..<order.count {
            let index = (spreadIndex + step) % order.count
            let node = view[order[index]]!
            guard node.acceptsWork, node.isFeasible(request.resources), request.labelSelector.matches(node.labels) else { continue }
            if node.isAvailable(request.resources) {
                spreadIndex = (index + 1) % order.count
                return .run(on: order[index])
            }
            if firstFeasible == nil { firstFeasible = order[index] }
        }
        if let firstFeasible { return .queue(on: firstFeasible) }
        return infeasible(request, in: view)
    }

    private func infeasible(_ request: SchedulingRequest, in view: ClusterView) -> SchedulingDecision {
        .infeasible("it requires \(request.resources)\(describe(request.labelSelector)), which no node of the cluster (\(view.nodes.count) alive) can provide")
    }

    private func describe(_ selector: LabelSelector) -> String {
        selector.isEmpty ? "" : " on a node with labels \(selector)"
    }
}
