import RayCommon

/// How a placement group's bundles are spread over nodes (Ray's `strategy`).
public enum PlacementStrategy: String, Sendable, Hashable, CaseIterable {
    /// On as few nodes as possible; more nodes when one cannot hold them all (best effort).
    case pack = "PACK"
    /// On distinct nodes where possible; nodes are shared when there are too few (best effort).
    case spread = "SPREAD"
    /// All on one node, or not at all.
    case strictPack = "STRICT_PACK"
    /// Each on a distinct node, or not at all.
    case strictSpread = "STRICT_SPREAD"
}

/// Where a placement group's bundles go, or why they cannot go anywhere.
public enum BundlePlacement: Sendable, Hashable {
    /// Bundle index → node, for every bundle that was to be placed.
    case placed([Int: NodeID])
    /// An empty cluster of these nodes could hold them, but not what is free now: wait for resources.
    case noResources(String)
    /// No node of the cluster could ever hold them as asked (resources or strategy): wait for nodes
    /// that can to join.
    case infeasible(String)
}

/// Ray's bundle scheduling policies as pure functions of a ``ClusterView`` (the GCS places groups
/// with them; the raylets then check and reserve). Nodes are always looked at in the cluster's
/// fixed order, so the same view gives the same answer.
public enum BundlePolicy {
    /// Places the bundles of `bundles` not in `fixed` (bundle index → node that already holds it,
    /// when a group is placed again after a node died), honouring `strategy` with the fixed ones.
    /// `selectors[i]`, where given, names the labels bundle `i`'s node must have (Ray's
    /// `bundle_label_selector`).
    public static func place(_ bundles: [ResourceSet], strategy: PlacementStrategy, fixed: [Int: NodeID] = [:],
                             selectors: [LabelSelector] = [], in view: ClusterView) -> BundlePlacement {
        let toPlace = bundles.indices.filter { fixed[$0] == nil }
        if toPlace.isEmpty { return .placed([:]) }
        let request = Request(bundles: bundles, selectors: selectors)
        let nodes = view.orderedIDs.filter { view[$0]!.acceptsWork }
        let now = nodes.map { Capacity(id: $0, free: view[$0]!.available, total: view[$0]!.total, labels: view[$0]!.labels) }
        if let placed = assign(request, toPlace, strategy, fixed, now) { return .placed(placed) }
        let empty = now.map { Capacity(id: $0.id, free: $0.total, total: $0.total, labels: $0.labels) }
        // Feasibility on an empty cluster ignores where fixed bundles sit only if their nodes are gone.
        if assign(request, toPlace, strategy, fixed, empty) != nil {
            return .noResources("the cluster does not have \(describe(bundles, strategy)) free now")
        }
        return .infeasible(infeasibility(request, toPlace, strategy, fixed, empty))
    }

    struct Capacity {
        let id: NodeID
        var free: ResourceSet
        let total: ResourceSet
        let labels: [String: String]
    }

    /// The bundles and, for those that have one, the labels their node must have.
    struct Request {
        let bundles: [ResourceSet]
        let selectors: [LabelSelector]

        func allows(_ node: Capacity, _ index: Int) -> Bool {
            index >= selectors.count || selectors[index].matches(node.labels)
        }

        /// The node has room for bundle `index` now and the labels it asks for.
        func fits(_ index: Int, on node: Capacity, free: ResourceSet? = nil) -> Bool {
            (free ?? node.free).covers(bundles[index]) && allows(node, index)
        }
    }

    private static func assign(_ request: Request, _ toPlace: [Int], _ strategy: PlacementStrategy,
                               _ fixed: [Int: NodeID], _ nodes: [Capacity]) -> [Int: NodeID]? {
        let bundles = request.bundles
        var nodes = nodes
        let used = Set(fixed.values)
        // Largest bundles first: they have the fewest places to go.
        let order = toPlace.sorted { size(bundles[$0]) != size(bundles[$1]) ? size(bundles[$0]) > size(bundles[$1]) : $0 < $1 }
        switch strategy {
        case .strictPack:
            var need = ResourceSet()
            for index in toPlace { need.add(bundles[index]) }
            var candidates = nodes.indices.filter { n in nodes[n].free.covers(need) && toPlace.allSatisfy { request.allows(nodes[n], $0) } }
            if let home = used.first { candidates = candidates.filter { nodes[$0].id == home } }
            guard let best = candidates.min(by: { leftover(nodes[$0], need) < leftover(nodes[$1], need) }) else { return nil }
            return Dictionary(uniqueKeysWithValues: toPlace.map { ($0, nodes[best].id) })
        case .pack:
            // One node for all of them if there is one (the group's own node first), else fill the
            // node that takes the most of what is left, and go on.
            var need = ResourceSet()
            for index in toPlace { need.add(bundles[index]) }
            let whole = nodes.indices.filter { n in nodes[n].free.covers(need) && toPlace.allSatisfy { request.allows(nodes[n], $0) } }
            if let best = whole.min(by: { rank(nodes[$0], need, used) < rank(nodes[$1], need, used) }) {
                return Dictionary(uniqueKeysWithValues: toPlace.map { ($0, nodes[best].id) })
            }
            var result: [Int: NodeID] = [:]
            var left = order
            var usedNow = used
            while !left.isEmpty {
                var bestNode: Int?
                var bestFit: [Int] = []
                for n in nodes.indices {
                    var free = nodes[n].free
                    var fit: [Int] = []
                    for index in left where request.fits(index, on: nodes[n], free: free) {
                        free.subtract(bundles[index])
                        fit.append(index)
                    }
                    guard !fit.isEmpty else { continue }
                    let better: Bool
                    if let current = bestNode {
                        let mine = (usedNow.contains(nodes[n].id) ? 0 : 1, -fit.count)
                        let theirs = (usedNow.contains(nodes[current].id) ? 0 : 1, -bestFit.count)
                        better = mine < theirs
                    } else {
                        better = true
                    }
                    if better {
                        bestNode = n
                        bestFit = fit
                    }
                }
                guard let n = bestNode else { return nil }
                for index in bestFit {
                    nodes[n].free.subtract(bundles[index])
                    result[index] = nodes[n].id
                }
                usedNow.insert(nodes[n].id)
                left.removeAll { bestFit.contains($0) }
            }
            return result
        case .spread, .strictSpread:
            var result: [Int: NodeID] = [:]
            var usedNow = used
            for index in order {
                let bundle = bundles[index]
                let fitting = nodes.indices.filter { request.fits(index, on: nodes[$0]) }
                let fresh = fitting.filter { !usedNow.contains(nodes[$0].id) }
                let pool = strategy == .strictSpread || !fresh.isEmpty ? fresh : fitting
                // STRICT_SPREAD keeps the roomiest nodes for the bundles still to come (best fit);
                // SPREAD takes the least loaded node.
                let pick = strategy == .strictSpread
                    ? pool.min { leftover(nodes[$0], bundle) < leftover(nodes[$1], bundle) }
                    : pool.max { leftover(nodes[$0], bundle) < leftover(nodes[$1], bundle) }
                guard let n = pick else { return nil }
                nodes[n].free.subtract(bundle)
                result[index] = nodes[n].id
                usedNow.insert(nodes[n].id)
            }
            return result
        }
    }

    /// Pack ranking: a node of the group first, then the best fit.
    private static func rank(_ node: Capacity, _ need: ResourceSet, _ used: Set<NodeID>) -> (Int, Double) {
        (used.contains(node.id) ? 0 : 1, leftover(node, need))
    }

    /// What share of the node's resources that `need` names would be left free after it (lower:
    /// a tighter fit).
    static func leftover(_ node: Capacity, _ need: ResourceSet) -> Double {
        var share = 0.0
        for (name, amount) in need.amounts where node.total[name] > 0 {
            share += (node.free[name] - amount) / node.total[name]
        }
        return share
    }

    static func size(_ bundle: ResourceSet) -> Double { bundle.amounts.values.reduce(0, +) }

    static func describe(_ bundles: [ResourceSet], _ strategy: PlacementStrategy) -> String {
        "[" + bundles.map(\.rayDescription).joined(separator: ", ") + "] with strategy \(strategy.rawValue)"
    }

    private static func infeasibility(_ request: Request, _ toPlace: [Int], _ strategy: PlacementStrategy,
                                      _ fixed: [Int: NodeID], _ nodes: [Capacity]) -> String {
        let bundles = request.bundles
        let group = describe(bundles, strategy)
        if let lonely = toPlace.first(where: { index in !nodes.contains { request.fits(index, on: $0) } }) {
            let labels = lonely < request.selectors.count && !request.selectors[lonely].isEmpty
                ? " with labels \(request.selectors[lonely])" : ""
            return "no node of the cluster could ever hold bundle \(lonely) \(bundles[lonely].rayDescription)\(labels) of \(group)"
        }
        switch strategy {
        case .strictPack:
            return "no node of the cluster could ever hold all of \(group) at once"
        case .strictSpread:
            let hosts = nodes.filter { node in toPlace.contains { request.fits($0, on: node) } && !fixed.values.contains(node.id) }
            return "\(group) needs \(toPlace.count) distinct nodes that could hold its bundles; the cluster has \(hosts.count)"
        case .pack, .spread:
            return "the cluster's nodes together could never hold \(group)"
        }
    }
}

/// How a placement group's reserved resources are named on the nodes that hold its bundles (Ray's
/// formatted resources): committing bundle `i` of group `pg` with `{"CPU": 2}` adds `CPU_group_i_<pg>`
/// and `CPU_group_<pg>` (2 each) and the markers `bundle_group_i_<pg>`, `bundle_group_<pg>` (1000
/// each); a task in bundle `i` asks for the first two of its own amounts and 0.001 of each marker
/// (so work that needs no resources still lands in its bundle). Index −1 is any bundle.
public enum BundleResources {
    public static let marker = "bundle"
    public static let markerTotal = 1000.0
    public static let markerRequest = 0.001

    public static func indexed(_ name: String, _ index: Int, _ pg: PlacementGroupID) -> String { "\(name)_group_\(index)_\(pg.hex)" }
    public static func wildcard(_ name: String, _ pg: PlacementGroupID) -> String { "\(name)_group_\(pg.hex)" }

    /// What committing bundle `index` of `pg` adds to its node.
    public static func committed(_ bundle: ResourceSet, index: Int, of pg: PlacementGroupID) -> ResourceSet {
        var names: [String: Double] = [:]
        for (name, amount) in bundle.amounts {
            names[indexed(name, index, pg)] = amount
            names[wildcard(name, pg)] = amount
        }
        names[indexed(marker, index, pg)] = markerTotal
        names[wildcard(marker, pg)] = markerTotal
        return ResourceSet(names)
    }

    /// What a task or actor that asks for `resources` asks for in bundle `index` (−1: any) of `pg`.
    public static func request(_ resources: [String: Double], index: Int, in pg: PlacementGroupID) -> [String: Double] {
        var names: [String: Double] = [:]
        for (name, amount) in resources where amount != 0 {
            names[wildcard(name, pg)] = amount
            if index >= 0 { names[indexed(name, index, pg)] = amount }
        }
        names[wildcard(marker, pg)] = markerRequest
        if index >= 0 { names[indexed(marker, index, pg)] = markerRequest }
        return names
    }

    /// True if `name` is one of `pg`'s reserved resources.
    public static func belongs(_ name: String, to pg: PlacementGroupID) -> Bool {
        isGroupResource(name) && name.utf8.suffix(hexLength).elementsEqual(pg.hex.utf8)
    }

    private static let hexLength = PlacementGroupIDKind.size * 2
    private static let infix = Array("_group_".utf8)

    /// True if `name` is any placement group's reserved resource (not a node's own): it ends in
    /// `_group_<pg>` or `_group_<index>_<pg>`. Looks at bytes only (the raylet asks this of every
    /// resource name when a group goes).
    public static func isGroupResource(_ name: String) -> Bool {
        let bytes = name.utf8
        guard bytes.count > hexLength + infix.count else { return false }
        let hex = bytes.suffix(hexLength)
        guard hex.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else { return false }
        var head = Array(bytes.dropLast(hexLength))
        guard head.last == UInt8(ascii: "_") else { return false }
        // Either "<name>_group_" or "<name>_group_<index>_".
        if head.suffix(infix.count).elementsEqual(infix) { return head.count > infix.count }
        head.removeLast()
        while let last = head.last, last >= 48, last <= 57 { head.removeLast() }
        return head.count > infix.count && head.last == UInt8(ascii: "_") && head.suffix(infix.count).elementsEqual(infix)
    }

    /// What is wrong with a placement group's bundles, in Ray's words (nil: nothing): none at all,
    /// a bundle with no resource above zero, a negative or non-finite amount, or a name that is
    /// empty or already a bundle's reserved resource.
    public static func problem(with bundles: [[String: Double]]) -> String? {
        guard !bundles.isEmpty else { return "The placement group `bundles` argument cannot contain an empty list" }
        for (index, bundle) in bundles.enumerated() {
            if let bad = bundle.sorted(by: { $0.key < $1.key }).first(where: { $0.value < 0 || !$0.value.isFinite }) {
                return "bundle \(index): resource \(bad.key) cannot be \(bad.value)"
            }
            if let bad = bundle.keys.sorted().first(where: { $0.isEmpty || isGroupResource($0) }) {
                return "bundle \(index): '\(bad)' is not a resource a bundle can ask for"
            }
            guard bundle.values.contains(where: { $0 > 0 }) else {
                return "Bundles cannot be an empty dictionary or resources with only 0 values. Bundle \(index) is \(ResourceSet(bundle).rayDescription)"
            }
        }
        return nil
    }
}
