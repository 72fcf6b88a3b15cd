import RayScheduling

/// A node as the autoscaler sees it: one the provider launched (with its type) or one that joined
/// by itself (no type: counted for capacity, never ended).
public struct NodeSnapshot: Sendable, Hashable {
    public enum Status: Sendable, Hashable {
        /// Launched, not registered yet: its type's resources are on their way.
        case pending
        case running
        /// Being ended: it takes no new work and counts for nothing.
        case draining
    }

    public var id: String
    public var type: String?
    public var status: Status
    public var total: ResourceSet
    public var available: ResourceSet
    /// How long it has been idle (nothing leased, waiting or reserved); nil while busy.
    public var idle: Duration?
    public var isHead: Bool

    public init(id: String, type: String?, status: Status, total: ResourceSet, available: ResourceSet,
                idle: Duration? = nil, isHead: Bool = false) {
        self.id = id
        self.type = type
        self.status = status
        self.total = total
        self.available = available
        self.idle = idle
        self.isHead = isHead
    }

    /// A committed placement-group bundle holds resources here.
    public var hasBundles: Bool { total.amounts.keys.contains { BundleResources.isGroupResource($0) } }
}

/// A placement group that waits for capacity.
public struct GangDemand: Sendable, Hashable {
    public var id: String
    public var bundles: [ResourceSet]
    public var strategy: PlacementStrategy
    public init(id: String, bundles: [ResourceSet], strategy: PlacementStrategy) {
        self.id = id
        self.bundles = bundles
        self.strategy = strategy
    }
}

/// What the cluster is asked for.
public struct Demand: Sendable, Hashable {
    /// Queued tasks and actors by resource shape.
    public var shapes: [ResourceSet: Int]
    /// Placement groups not created yet.
    public var gangs: [GangDemand]
    /// `requestResources` bundles: the cluster's total must hold them all at once, whatever runs.
    public var constraints: [ResourceSet]

    public init(shapes: [ResourceSet: Int] = [:], gangs: [GangDemand] = [], constraints: [ResourceSet] = []) {
        self.shapes = shapes
        self.gangs = gangs
        self.constraints = constraints
    }
}

public struct ScalingDecision: Sendable, Hashable {
    public struct Termination: Sendable, Hashable {
        public var id: String
        public var type: String
        public var reason: String
    }

    /// Nodes to launch by type.
    public var launch: [String: Int] = [:]
    public var terminate: [Termination] = []
    /// Shapes no node type can hold (they wait for a node that can, and are reported).
    public var infeasible: [ResourceSet] = []
    /// Placement groups no set of nodes within the limits can hold.
    public var infeasibleGangs: [String] = []
    /// Demands that fit a node type but wait for the limits (max_workers, upscaling_speed, backoff).
    public var waiting = 0

    public init() {}
}

/// Ray's autoscaler decision (v2's scheduler is the model), pure: from the demand, the nodes and
/// the config, which nodes to launch (bin-packing onto what exists and is on its way first) and
/// which idle workers to end.
public enum ScalingPolicy {
    /// Queued shapes looked at per decision (a queue of a million tasks is not unrolled).
    public static let maxExpandedShapes = 2_000
    /// Nodes of a type that may be pending at once, whatever `upscaling_speed` says
    /// (Ray's `upscaling_initial_num_nodes`).
    public static let initialPending = 5

    /// `blocked`: types whose launches are backing off after failures.
    public static func decide(config: ClusterConfig, nodes: [NodeSnapshot], demand: Demand, blocked: Set<String> = []) -> ScalingDecision {
        var plan = Plan(config: config, nodes: nodes, blocked: blocked)
        var decision = ScalingDecision()

        // min_workers first (not limited by upscaling_speed, as Ray).
        for type in config.sortedTypes {
            while plan.count(type.name) < type.minWorkers, plan.workers < config.maxWorkers, !blocked.contains(type.name) {
                plan.launch(type)
            }
        }

        // requestResources: the bundles must fit the cluster's total capacity (usage aside).
        for bundle in demand.constraints.sorted(by: Self.larger) {
            if plan.place(bundle, capacity: true) != nil { continue }
            switch plan.launchFor(bundle, remaining: [bundle], capacity: true) {
            case .launched: break
            case .limited: decision.waiting += 1
            case .infeasible: decision.infeasible.append(bundle)
            }
        }

        // Placement groups, each all or nothing.
        for gang in demand.gangs {
            var trial = plan
            let units = gang.strategy == .strictPack ? [gang.bundles.reduce(into: ResourceSet()) { $0.add($1) }] : gang.bundles
            if trial.place(gang) { plan = trial } else if units.contains(where: { !plan.anyTypeFits($0) && !plan.anyNodeFits($0) }) {
                decision.infeasibleGangs.append(gang.id)
            } else {
                decision.waiting += 1
            }
        }

        // Tasks and actors, largest first.
        var queue: [ResourceSet] = []
        for (shape, count) in demand.shapes.sorted(by: { Self.larger($0.key, $1.key) }) where !shape.isEmpty {
            let room = maxExpandedShapes - queue.count
            guard room > 0 else { break }
            queue += Array(repeating: shape, count: min(count, room))
        }
        var index = 0
        while index < queue.count {
            let shape = queue[index]
            if plan.place(shape, capacity: false) == nil {
                switch plan.launchFor(shape, remaining: Array(queue[index...]), capacity: false) {
                case .launched: break
                case .limited: decision.waiting += 1
                case .infeasible where !decision.infeasible.contains(shape): decision.infeasible.append(shape)
                case .infeasible: break
                }
            }
            index += 1
        }

        decision.launch = plan.launches
        decision.terminate = idleTerminations(config: config, nodes: nodes, needed: plan.needed)
        return decision
    }

    /// Idle workers past the timeout, longest idle first, never below a type's min_workers, never one
    /// holding a bundle or one the plan above counted on.
    static func idleTerminations(config: ClusterConfig, nodes: [NodeSnapshot], needed: Set<String>) -> [ScalingDecision.Termination] {
        var remaining: [String: Int] = [:]
        for node in nodes where !node.isHead && node.status != .draining { if let type = node.type { remaining[type, default: 0] += 1 } }
        var result: [ScalingDecision.Termination] = []
        let candidates = nodes.filter { node in
            guard !node.isHead, node.status == .running, node.type != nil, let idle = node.idle else { return false }
            return idle >= config.idleTimeout && !node.hasBundles && !needed.contains(node.id)
        }.sorted { ($0.idle!, $1.id) > ($1.idle!, $0.id) }
        for node in candidates {
            let type = node.type!
            let minimum = config.nodeTypes[type]?.minWorkers ?? 0
            guard remaining[type, default: 0] > minimum else { continue }
            remaining[type, default: 0] -= 1
            let seconds = (Self.seconds(node.idle!) * 10).rounded() / 10
            result.append(.init(id: node.id, type: type, reason: "idle for \(seconds) s (idle_timeout_minutes \(Self.seconds(config.idleTimeout) / 60))"))
        }
        return result
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Bigger shapes first (by their summed amounts), then by name, so packing is deterministic.
    static func larger(_ a: ResourceSet, _ b: ResourceSet) -> Bool {
        let (sa, sb) = (a.amounts.values.reduce(0, +), b.amounts.values.reduce(0, +))
        return sa != sb ? sa > sb : a.description < b.description
    }
}

/// The nodes there are and those a decision adds, with what is free on each.
struct Plan {
    struct Entry {
        var id: String
        var type: String?
        /// Free for tasks, actors and groups (a pending or planned node: its type's resources).
        var free: ResourceSet
        /// Free for requestResources bundles (measured against total capacity).
        var capacity: ResourceSet
    }

    enum LaunchOutcome { case launched, limited, infeasible }

    let config: ClusterConfig
    let blocked: Set<String>
    var entries: [Entry] = []
    var running: [String: Int] = [:]
    var pending: [String: Int] = [:]
    var launches: [String: Int] = [:]
    var workers = 0
    var needed: Set<String> = []
    private var planned = 0

    init(config: ClusterConfig, nodes: [NodeSnapshot], blocked: Set<String>) {
        self.config = config
        self.blocked = blocked
        for node in nodes where node.status != .draining {
            switch node.status {
            case .pending:
                let resources = node.type.flatMap { config.nodeTypes[$0] }.map { ResourceSet($0.resources) } ?? node.total
                entries.append(Entry(id: node.id, type: node.type, free: resources, capacity: resources))
            default:
                entries.append(Entry(id: node.id, type: node.type, free: node.available, capacity: node.total))
            }
            guard !node.isHead, let type = node.type else { continue }
            workers += 1
            if node.status == .pending { pending[type, default: 0] += 1 } else { running[type, default: 0] += 1 }
        }
    }

    /// Workers of a type, running or on their way.
    func count(_ type: String) -> Int { running[type, default: 0] + pending[type, default: 0] }

    func canLaunch(_ type: NodeTypeConfig) -> Bool {
        guard !blocked.contains(type.name), count(type.name) < type.maxWorkers, workers < config.maxWorkers else { return false }
        // upscaling_speed: nodes pending at once, as a multiple of those running (at least 5).
        let runningNodes = running.values.reduce(0, +)
        let allowed = max(ScalingPolicy.initialPending, Int((config.upscalingSpeed * Double(max(1, runningNodes))).rounded(.up)))
        return pending.values.reduce(0, +) < allowed
    }

    @discardableResult
    mutating func launch(_ type: NodeTypeConfig) -> Int {
        planned += 1
        let resources = ResourceSet(type.resources)
        entries.append(Entry(id: "planned-\(planned)", type: type.name, free: resources, capacity: resources))
        pending[type.name, default: 0] += 1
        launches[type.name, default: 0] += 1
        workers += 1
        return entries.count - 1
    }

    func anyTypeFits(_ shape: ResourceSet) -> Bool { config.nodeTypes.values.contains { ResourceSet($0.resources).covers(shape) } }
    func anyNodeFits(_ shape: ResourceSet) -> Bool { entries.contains { $0.capacity.covers(shape) } }

    /// Puts `shape` on the first node with room (excluding `avoid`); its index.
    mutating func place(_ shape: ResourceSet, capacity: Bool, avoid: Set<Int> = []) -> Int? {
        for index in entries.indices where !avoid.contains(index) {
            if capacity ? entries[index].capacity.covers(shape) : entries[index].free.covers(shape) {
                take(shape, at: index, capacity: capacity)
                return index
            }
        }
        return nil
    }

    private mutating func take(_ shape: ResourceSet, at index: Int, capacity: Bool) {
        if capacity { entries[index].capacity.subtract(shape) } else { entries[index].free.subtract(shape) }
        needed.insert(entries[index].id)
    }

    /// Launches the node type that best fits `shape` and as much of `remaining` as it can take
    /// (Ray's utilization score; a GPU node only for work that needs a GPU), and puts `shape` on it.
    mutating func launchFor(_ shape: ResourceSet, remaining: [ResourceSet], capacity: Bool, avoid: Set<Int> = []) -> LaunchOutcome {
        let fitting = config.sortedTypes.filter { ResourceSet($0.resources).covers(shape) }
        guard !fitting.isEmpty else { return anyNodeFits(shape) ? .limited : .infeasible }
        let launchable = fitting.filter(canLaunch)
        guard var best = launchable.first else { return .limited }
        var bestScore = Self.score(best, shape, remaining)
        // In name order, replaced only by a better score: equal scores keep the first name.
        for type in launchable.dropFirst() {
            let score = Self.score(type, shape, remaining)
            if score > bestScore { (best, bestScore) = (type, score) }
        }
        let index = launch(best)
        take(shape, at: index, capacity: capacity)
        return .launched
    }

    /// Ray's score: (no GPU wasted, the least used of the node's resources, their mean use), by what a
    /// node of the type would hold of the remaining demand.
    private static func score(_ type: NodeTypeConfig, _ shape: ResourceSet, _ remaining: [ResourceSet]) -> (Int, Double, Double) {
        let total = ResourceSet(type.resources)
        var free = total
        for request in remaining where free.covers(request) { free.subtract(request) }
        let counted = type.resources.filter { $0.value > 0 && $0.key != "memory" && $0.key != "object_store_memory" }
        let uses = counted.keys.map { (total[$0] - free[$0]) / total[$0] }
        let mean = uses.isEmpty ? 0 : uses.reduce(0, +) / Double(uses.count)
        let wastesGPU = total["GPU"] > 0 && shape["GPU"] == 0
        return (wastesGPU ? 0 : 1, uses.min() ?? 0, mean)
    }

    /// A placement group on existing, pending and new nodes, by its strategy.
    mutating func place(_ gang: GangDemand) -> Bool {
        switch gang.strategy {
        case .strictPack:
            var sum = ResourceSet()
            for bundle in gang.bundles { sum.add(bundle) }
            return place(sum, capacity: false) != nil || launchFor(sum, remaining: [sum], capacity: false) == .launched
        case .strictSpread:
            var used: Set<Int> = []
            for bundle in gang.bundles {
                if let index = place(bundle, capacity: false, avoid: used) {
                    used.insert(index)
                } else if launchFor(bundle, remaining: [bundle], capacity: false) == .launched {
                    used.insert(entries.count - 1)
                } else {
                    return false
                }
            }
            return true
        case .pack, .spread:
            for (position, bundle) in gang.bundles.enumerated() where place(bundle, capacity: false) == nil {
                guard launchFor(bundle, remaining: Array(gang.bundles[position...]), capacity: false) == .launched else { return false }
            }
            return true
        }
    }
}
