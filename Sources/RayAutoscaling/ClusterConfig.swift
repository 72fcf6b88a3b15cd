#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A node type of a cluster config (`available_node_types.<name>`).
public struct NodeTypeConfig: Sendable, Hashable {
    public var name: String
    /// What a node of this type offers (`resources`): CPU, GPU, memory, custom resources.
    public var resources: [String: Double]
    public var labels: [String: String]
    public var minWorkers: Int
    public var maxWorkers: Int

    public init(name: String, resources: [String: Double], labels: [String: String] = [:], minWorkers: Int = 0, maxWorkers: Int) {
        self.name = name
        self.resources = resources
        self.labels = labels
        self.minWorkers = minWorkers
        self.maxWorkers = maxWorkers
    }
}

/// A cluster config in Ray's cluster-config schema (the YAML of `ray up` and
/// `ray start --autoscaling-config`), the parts the autoscaler reads.
public struct ClusterConfig: Sendable, Hashable {
    public var clusterName: String
    /// Worker nodes at most, whatever their type (the head not counted). Ray's default: 2.
    public var maxWorkers: Int
    /// A worker idle this long is ended (Ray's `idle_timeout_minutes`, default 5; fractions allowed).
    public var idleTimeout: Duration
    /// How many nodes may be pending at once, as a multiple of those running (Ray's default 1.0;
    /// at least 5 are always allowed, as Ray's `upscaling_initial_num_nodes`).
    public var upscalingSpeed: Double
    public var nodeTypes: [String: NodeTypeConfig]
    public var headNodeType: String
    /// `provider.type`: `local` (or Ray's `fake_multinode`): nodes on this machine's loopback addresses.
    public var providerType: String

    public init(clusterName: String = "default", maxWorkers: Int = 2, idleTimeout: Duration = .seconds(300),
                upscalingSpeed: Double = 1, nodeTypes: [String: NodeTypeConfig], headNodeType: String, providerType: String = "local") {
        self.clusterName = clusterName
        self.maxWorkers = maxWorkers
        self.idleTimeout = idleTimeout
        self.upscalingSpeed = upscalingSpeed
        self.nodeTypes = nodeTypes
        self.headNodeType = headNodeType
        self.providerType = providerType
    }

    /// Node types by name, in name order (so decisions are deterministic).
    public var sortedTypes: [NodeTypeConfig] { nodeTypes.values.sorted { $0.name < $1.name } }

    /// What is wrong with a config, and where (`available_node_types.gpu.min_workers`).
    public struct Problem: Error, Sendable, Hashable, CustomStringConvertible {
        public var path: String
        public var message: String
        public init(path: String, message: String) {
            self.path = path
            self.message = message
        }
        public var description: String { path.isEmpty ? "cluster config: \(message)" : "cluster config: \(path): \(message)" }
    }

    public static let providerTypes: Set = ["local", "fake_multinode"]

    /// Keys of Ray's schema the autoscaler does not use (commands, mounts, auth, docker): accepted and
    /// ignored. Any other key is a mistake, named with its path.
    static let ignoredTopLevel: Set = [
        "auth", "docker", "file_mounts", "cluster_synced_files", "file_mounts_sync_continuously", "rsync_exclude",
        "rsync_filter", "initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
        "head_start_ray_commands", "worker_start_ray_commands", "no_restart", "metadata", "head_node", "worker_nodes",
    ]
    static let topLevel: Set = ["cluster_name", "max_workers", "upscaling_speed", "idle_timeout_minutes", "provider",
                                "available_node_types", "head_node_type"]
    static let nodeTypeKeys: Set = ["resources", "labels", "min_workers", "max_workers", "node_config", "docker", "worker_setup_commands"]

    /// Reads a config from its JSON form (what `YAML.toJSON` makes of the YAML file).
    public static func parse(json: String) throws(Problem) -> ClusterConfig {
        let object: JSONValue
        do {
            object = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
        } catch {
            throw Problem(path: "", message: "not valid JSON: \(error)")
        }
        guard case .object(let root) = object else {
            throw Problem(path: "", message: "must be a mapping of Ray's cluster-config keys (cluster_name, available_node_types, …), got \(object.kind)")
        }
        for key in root.keys.sorted() where !topLevel.contains(key) && !ignoredTopLevel.contains(key) {
            throw Problem(path: key, message: "unknown key (Ray's cluster config has no such field)")
        }
        let clusterName = try string(root["cluster_name"], "cluster_name") ?? "default"
        let maxWorkers = try integer(root["max_workers"], "max_workers") ?? 2
        let idleMinutes = try number(root["idle_timeout_minutes"], "idle_timeout_minutes") ?? 5
        let upscalingSpeed = try number(root["upscaling_speed"], "upscaling_speed") ?? 1
        guard upscalingSpeed > 0 else { throw Problem(path: "upscaling_speed", message: "must be above 0, got \(upscalingSpeed)") }

        guard let provider = root["provider"] else { throw Problem(path: "provider", message: "missing (use `provider: {type: local}`)") }
        guard case .object(let providerMap) = provider else {
            throw Problem(path: "provider", message: "must be a mapping such as {type: local}, got \(provider.kind)")
        }
        guard let providerType = try string(providerMap["type"], "provider.type") else {
            throw Problem(path: "provider.type", message: "missing (use `local`)")
        }
        guard providerTypes.contains(providerType) else {
            throw Problem(path: "provider.type", message: "`\(providerType)` is not a provider this cluster can use (\(providerTypes.sorted().joined(separator: ", ")))")
        }

        guard let typesValue = root["available_node_types"] else {
            throw Problem(path: "available_node_types", message: "missing: name at least the head's node type")
        }
        guard case .object(let types) = typesValue, !types.isEmpty else {
            throw Problem(path: "available_node_types", message: "must be a non-empty mapping of node type names to their configs")
        }
        var nodeTypes: [String: NodeTypeConfig] = [:]
        for name in types.keys.sorted() {
            nodeTypes[name] = try nodeType(name, types[name]!, clusterMax: maxWorkers)
        }
        guard let head = try string(root["head_node_type"], "head_node_type") else {
            throw Problem(path: "head_node_type", message: "missing: which of available_node_types the head is")
        }
        guard nodeTypes[head] != nil else {
            throw Problem(path: "head_node_type", message: "`\(head)` is not one of available_node_types (\(nodeTypes.keys.sorted().joined(separator: ", ")))")
        }
        return ClusterConfig(clusterName: clusterName, maxWorkers: maxWorkers, idleTimeout: .milliseconds(Int64((idleMinutes * 60_000).rounded())),
                             upscalingSpeed: upscalingSpeed, nodeTypes: nodeTypes, headNodeType: head, providerType: providerType)
    }

    private static func nodeType(_ name: String, _ value: JSONValue, clusterMax: Int) throws(Problem) -> NodeTypeConfig {
        let path = "available_node_types.\(name)"
        guard case .object(let map) = value else { throw Problem(path: path, message: "must be a mapping, got \(value.kind)") }
        for key in map.keys.sorted() where !nodeTypeKeys.contains(key) {
            throw Problem(path: "\(path).\(key)", message: "unknown key (a node type has resources, labels, min_workers, max_workers, node_config)")
        }
        guard let resourcesValue = map["resources"] else {
            throw Problem(path: "\(path).resources", message: "missing: what a node of this type offers, e.g. {CPU: 2}")
        }
        guard case .object(let resourceMap) = resourcesValue else {
            throw Problem(path: "\(path).resources", message: "must be a mapping of resource names to amounts, got \(resourcesValue.kind)")
        }
        var resources: [String: Double] = [:]
        for (resource, amount) in resourceMap.sorted(by: { $0.key < $1.key }) {
            guard let value = try number(amount, "\(path).resources.\(resource)") else {
                throw Problem(path: "\(path).resources.\(resource)", message: "must be a number, got null")
            }
            guard value >= 0 else { throw Problem(path: "\(path).resources.\(resource)", message: "cannot be negative, got \(value)") }
            if value > 0 { resources[resource] = value }
        }
        var labels: [String: String] = [:]
        if let labelsValue = map["labels"], labelsValue != .null {
            guard case .object(let labelMap) = labelsValue else {
                throw Problem(path: "\(path).labels", message: "must be a mapping of label names to strings, got \(labelsValue.kind)")
            }
            for (key, label) in labelMap {
                guard case .string(let text) = label else {
                    throw Problem(path: "\(path).labels.\(key)", message: "must be a string, got \(label.kind)")
                }
                labels[key] = text
            }
        }
        let minWorkers = try integer(map["min_workers"], "\(path).min_workers") ?? 0
        let maxWorkers = try integer(map["max_workers"], "\(path).max_workers") ?? clusterMax
        guard minWorkers <= maxWorkers else {
            throw Problem(path: "\(path).min_workers", message: "min_workers (\(minWorkers)) is above max_workers (\(maxWorkers))")
        }
        return NodeTypeConfig(name: name, resources: resources, labels: labels, minWorkers: minWorkers, maxWorkers: maxWorkers)
    }

    private static func string(_ value: JSONValue?, _ path: String) throws(Problem) -> String? {
        guard let value, value != .null else { return nil }
        guard case .string(let text) = value else { throw Problem(path: path, message: "must be a string, got \(value.kind)") }
        return text
    }

    private static func number(_ value: JSONValue?, _ path: String) throws(Problem) -> Double? {
        guard let value, value != .null else { return nil }
        guard case .number(let number) = value, number.isFinite else {
            throw Problem(path: path, message: "must be a number, got \(value.kind)")
        }
        return number
    }

    private static func integer(_ value: JSONValue?, _ path: String) throws(Problem) -> Int? {
        guard let number = try number(value, path) else { return nil }
        guard number >= 0, number == number.rounded(), number < 1e9 else {
            throw Problem(path: path, message: "must be a whole number of nodes (0 or more), got \(number)")
        }
        return Int(number)
    }
}

/// A JSON document's values, with booleans apart from numbers (so `max_workers: true` is an error).
enum JSONValue: Decodable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "a list"
        case .object: "a mapping"
        }
    }
}
