import RayCommon

/// One node as the scheduler sees it: what it has in all, what is free, and its labels (Ray's own,
/// such as ``Labels/nodeID``, and the ones it was started with).
public struct NodeResources: Sendable, Hashable {
    public var total: ResourceSet
    public var available: ResourceSet
    public var labels: [String: String]
    /// Draining or dying: it takes no new work, though it is still in the view.
    public var acceptsWork: Bool

    public init(total: ResourceSet, available: ResourceSet? = nil, labels: [String: String] = [:], acceptsWork: Bool = true) {
        self.total = total
        self.available = available ?? total
        self.labels = labels
        self.acceptsWork = acceptsWork
    }

    /// Could the node ever run `request` (on an empty node)?
    public func isFeasible(_ request: ResourceSet) -> Bool { total.covers(request) }

    /// Can it run `request` now?
    public func isAvailable(_ request: ResourceSet) -> Bool { available.covers(request) }
}

/// The cluster's resource view: every live node's resources and labels. The GCS keeps the newest
/// report of each node and publishes changes; each raylet applies them, with its own node's entry
/// always its exact local state. `version` grows with every change, so a reader can tell a stale
/// copy.
public struct ClusterView: Sendable {
    public private(set) var nodes: [NodeID: NodeResources] = [:]
    public private(set) var version: Int64 = 0

    public init(nodes: [NodeID: NodeResources] = [:]) {
        self.nodes = nodes
        if !nodes.isEmpty { version = 1 }
    }

    public subscript(id: NodeID) -> NodeResources? { nodes[id] }

    /// Adds or replaces a node's entry.
    public mutating func update(_ id: NodeID, _ node: NodeResources) {
        guard nodes[id] != node else { return }
        nodes[id] = node
        version += 1
    }

    /// Updates what a node has free (nothing if the node is not in the view).
    public mutating func setAvailable(_ id: NodeID, _ available: ResourceSet) {
        guard var node = nodes[id], node.available != available else { return }
        node.available = available
        nodes[id] = node
        version += 1
    }

    /// A node died or left.
    public mutating func remove(_ id: NodeID) {
        guard nodes.removeValue(forKey: id) != nil else { return }
        version += 1
    }

    /// Node IDs in the order every raylet of the cluster uses for the same view (by ID).
    public var orderedIDs: [NodeID] { nodes.keys.sorted() }
}
