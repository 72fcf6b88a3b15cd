import RayCommon

/// One resource of Ray's state API (`ray/util/state/common.py`): its columns in Ray's order, which of
/// them `detail` adds, the ID column rows are sorted by, and which columns may be filtered on.
public struct StateResource: Sendable {
    public let name: String
    public let columns: [String]
    public let detailColumns: [String]
    public let idColumn: String
    public let filterable: [String]

    public static let nodes = StateResource(
        name: "nodes",
        columns: ["node_id", "node_ip", "is_head_node", "state", "state_message", "node_name", "resources_total", "labels"],
        detailColumns: ["start_time_ms", "end_time_ms"],
        idColumn: "node_id", filterable: ["node_id", "node_ip", "is_head_node", "state", "node_name"])
    public static let actors = StateResource(
        name: "actors",
        columns: ["actor_id", "class_name", "state", "job_id", "name", "node_id", "pid", "ray_namespace"],
        detailColumns: ["serialized_runtime_env", "required_resources", "death_cause", "is_detached", "placement_group_id",
                        "repr_name", "num_restarts", "num_restarts_due_to_lineage_reconstruction",
                        "num_restarts_due_to_node_preemption", "call_site", "label_selector", "fallback_strategy"],
        idColumn: "actor_id",
        filterable: ["actor_id", "class_name", "state", "job_id", "name", "node_id", "pid", "ray_namespace",
                     "placement_group_id", "repr_name"])
    public static let placementGroups = StateResource(
        name: "placement_groups",
        columns: ["placement_group_id", "name", "creator_job_id", "state"],
        detailColumns: ["bundles", "is_detached", "stats"],
        idColumn: "placement_group_id", filterable: ["placement_group_id", "name", "creator_job_id", "state", "is_detached"])
    public static let workers = StateResource(
        name: "workers",
        columns: ["worker_id", "is_alive", "worker_type", "exit_type", "node_id", "ip", "pid"],
        detailColumns: ["exit_detail", "worker_launch_time_ms", "worker_launched_time_ms", "start_time_ms", "end_time_ms",
                        "debugger_port", "num_paused_threads"],
        idColumn: "worker_id", filterable: ["worker_id", "is_alive", "worker_type", "exit_type", "node_id", "ip", "pid"])
    public static let tasks = StateResource(
        name: "tasks",
        columns: ["task_id", "attempt_number", "name", "state", "job_id", "actor_id", "type", "func_or_class_name",
                  "parent_task_id", "node_id", "worker_id", "worker_pid", "error_type"],
        detailColumns: ["language", "required_resources", "runtime_env_info", "placement_group_id", "events", "profiling_data",
                        "creation_time_ms", "start_time_ms", "end_time_ms", "task_log_info", "error_message",
                        "is_debugger_paused", "call_site", "label_selector", "fallback_strategy"],
        idColumn: "task_id",
        filterable: ["task_id", "attempt_number", "name", "state", "job_id", "actor_id", "type", "func_or_class_name",
                     "parent_task_id", "node_id", "worker_id", "worker_pid", "error_type"])
    public static let jobs = StateResource(
        name: "jobs",
        columns: ["job_id", "submission_id", "entrypoint", "type", "status", "message", "error_type", "driver_info"],
        detailColumns: ["start_time", "end_time", "metadata", "runtime_env", "driver_agent_http_address", "driver_node_id",
                        "driver_exit_code"],
        idColumn: "job_id", filterable: ["job_id", "type", "status", "submission_id"])
    public static let objects = StateResource(
        name: "objects",
        columns: ["object_id", "object_size", "task_status", "attempt_number", "reference_type", "call_site", "type", "pid", "ip"],
        detailColumns: [],
        idColumn: "object_id",
        filterable: ["object_id", "object_size", "task_status", "attempt_number", "reference_type", "call_site", "type", "pid", "ip"])
}

/// A list request's parameters, checked as Ray's state head checks them.
public struct StateQuery: Sendable, Equatable {
    public static let defaultLimit = 100
    /// RAY_MAX_LIMIT_FROM_API_SERVER.
    public static let maxLimit = 10_000

    public struct Filter: Sendable, Equatable {
        public var key: String
        public var equal: Bool
        public var value: String
    }

    public var limit = defaultLimit
    public var detail = false
    public var filters: [Filter] = []

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// From the query string's values (repeated keys in order).
    public static func parse(_ parameters: [(String, String)], for resource: StateResource) throws(Invalid) -> StateQuery {
        var query = StateQuery()
        func all(_ key: String) -> [String] { parameters.filter { $0.0 == key }.map(\.1) }
        if let limit = all("limit").last {
            guard let value = Int(limit), value > 0 else { throw Invalid(description: "limit must be a positive integer, got '\(limit)'") }
            guard value <= maxLimit else {
                throw Invalid(description: "Given limit \(value) exceeds the supported limit \(maxLimit). Use a lower limit.")
            }
            query.limit = value
        }
        if let detail = all("detail").last {
            switch detail.lowercased() {
            case "true", "1", "yes": query.detail = true
            case "false", "0", "no", "": query.detail = false
            default: throw Invalid(description: "detail must be a boolean, got '\(detail)'")
            }
        }
        let keys = all("filter_keys"), predicates = all("filter_predicates"), values = all("filter_values")
        guard keys.count == predicates.count, keys.count == values.count else {
            throw Invalid(description: "filter_keys, filter_predicates and filter_values must come in threes, got \(keys.count), \(predicates.count) and \(values.count)")
        }
        for (index, key) in keys.enumerated() {
            guard resource.filterable.contains(key) else {
                throw Invalid(description: "The given filter column \(key) is not supported. Supported filter columns: \(resource.filterable)")
            }
            guard predicates[index] == "=" || predicates[index] == "!=" else {
                throw Invalid(description: "Unsupported filter predicate \(predicates[index]) is given. Available predicates: ['=', '!=']")
            }
            query.filters.append(Filter(key: key, equal: predicates[index] == "=", value: values[index]))
        }
        return query
    }

    /// The `timeout` parameter (seconds, default 30), of which the sources get 80%, as Ray's state
    /// head leaves itself the rest to answer.
    public static func timeout(_ parameters: [(String, String)]) throws(Invalid) -> Duration {
        guard let text = parameters.last(where: { $0.0 == "timeout" })?.1 else { return .seconds(24) }
        guard let seconds = Double(text), seconds > 0, seconds <= 3600 else {
            throw Invalid(description: "timeout must be a number of seconds above 0 (at most 3600), got '\(text)'")
        }
        return .milliseconds(Int64(seconds * 800))
    }

    /// Rows filtered, sorted by ID, cut to the limit, in Ray's envelope's `data.result`. `total`:
    /// how many the sources had, when they sent fewer than they have.
    public func reply(_ rows: [[String: JSON]], for resource: StateResource, total: Int? = nil, partialFailure: String = "") -> JSON {
        let filtered = rows.filter { row in
            filters.allSatisfy { filter in
                (Self.text(row[filter.key] ?? .null).lowercased() == filter.value.lowercased()) == filter.equal
            }
        }
        // Each row's ID taken once (not twice per comparison), compared as Python compares str: by code
        // point, which is UTF-8's byte order.
        let sorted = filtered.map { (id: Array(Self.text($0[resource.idColumn] ?? .null).utf8), row: $0) }
            .sorted { $0.id.lexicographicallyPrecedes($1.id) }
        let columns = resource.columns + (detail ? resource.detailColumns : [])
        let result = sorted.prefix(limit).map { entry in JSON.object(columns.map { JSON.Member($0, entry.row[$0] ?? .null) }) }
        return .object([
            "total": .int(Int64(max(total ?? rows.count, rows.count))),
            "num_after_truncation": .int(Int64(rows.count)),
            "num_filtered": .int(Int64(filtered.count)),
            "result": .array(Array(result)),
            "partial_failure_warning": .string(partialFailure),
            "warnings": .null,
        ])
    }

    /// A value as a filter compares it: Python's str() of the field.
    static func text(_ value: JSON) -> String {
        switch value {
        case .null: "None"
        case .bool(let b): b ? "True" : "False"
        case .int(let i): String(i)
        case .double(let d): "\(d)"
        case .string(let s): s
        case .array, .object: value.text
        }
    }

    /// Ray's `rest_response` envelope.
    public static func envelope(_ result: JSON) -> JSON {
        .object(["result": .bool(true), "msg": .string(""), "data": .object(["result": result])])
    }

    public static func failure(_ message: String) -> JSON {
        .object(["result": .bool(false), "msg": .string(message), "data": .object(["result": .null])])
    }
}
