#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One setting: a name in Ray's spelling, a default, and an optional `RAY_<name>` environment override.
public struct Setting<Value: Sendable>: Sendable {
    public let name: String
    public let defaultValue: Value
    let parse: @Sendable (String) -> Value?

    /// The environment variable that overrides it: `RAY_` + name.
    public var environmentVariable: String { "RAY_" + name }
}

extension Setting where Value == Int {
    init(_ name: String, _ defaultValue: Int) {
        self.init(name: name, defaultValue: defaultValue, parse: { Int($0.trimmingSpaces) })
    }
}

extension Setting where Value == Double {
    init(_ name: String, _ defaultValue: Double) {
        self.init(name: name, defaultValue: defaultValue, parse: { Double($0.trimmingSpaces) })
    }
}

extension Setting where Value == Bool {
    init(_ name: String, _ defaultValue: Bool) {
        self.init(name: name, defaultValue: defaultValue, parse: { text in
            switch text.trimmingSpaces.lowercased() {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off": return false
            default: return nil
            }
        })
    }
}

extension Setting where Value == String {
    init(_ name: String, _ defaultValue: String) {
        self.init(name: name, defaultValue: defaultValue, parse: { $0 })
    }
}

extension String {
    fileprivate var trimmingSpaces: Substring {
        let trimmed = drop { $0 == " " || $0 == "\t" }
        return trimmed.prefix(trimmed.count - trimmed.reversed().prefix { $0 == " " || $0 == "\t" }.count)
    }
}

/// Every tunable of swift-ray in one table (as Ray's `ray_config_def.h`), each with a default and a
/// `RAY_<name>` environment override, read once per process.
public struct RayConfig: Sendable {
    /// Results at most this big travel inline in replies; larger ones go to the shared-memory store.
    public static let maxDirectCallObjectSize = Setting("max_direct_call_object_size", 100 * 1024)
    /// Bytes of the node's shared-memory object store; 0 means 30% of system memory, as Ray.
    public static let objectStoreMemory = Setting("object_store_memory", 0)
    /// The deadline of control-plane calls between processes.
    public static let rpcTimeoutMilliseconds = Setting("rpc_timeout_ms", 30_000)
    /// How often the GCS checks each raylet's health, and how many misses mark it dead.
    public static let healthCheckPeriodMilliseconds = Setting("health_check_period_ms", 3000)
    public static let healthCheckFailureThreshold = Setting("health_check_failure_threshold", 5)
    /// The deadline of one health check.
    public static let healthCheckTimeoutMilliseconds = Setting("health_check_timeout_ms", 10_000)
    /// Objects cross nodes in chunks of this many bytes. Ray's setting; Ray's default is 5 MiB, ours
    /// 1 MiB: over our gRPC streams 1 MiB chunks moved a 1 GiB object at 2.3–2.7 GB/s on this project's
    /// machine, 5 MiB ones at 1.5–1.7 (docs/benchmarks.md).
    public static let objectManagerDefaultChunkSize = Setting("object_manager_default_chunk_size", 1024 * 1024)
    /// Bytes the object manager may have outbound at once, over every object it serves (Ray's
    /// setting and default, 2 GiB): each stream holds its window's worth while it runs.
    public static let objectManagerMaxBytesInFlight = Setting("object_manager_max_bytes_in_flight", 2 * 1024 * 1024 * 1024)
    /// The GCS's default port.
    public static let gcsServerPort = Setting("gcs_server_port", 6379)
    /// Task attempts the GCS keeps for the state API (the oldest go first), as Ray's.
    public static let taskEventsMaxTasksInGCS = Setting("task_events_max_num_task_in_gcs", 100_000)
    /// How often each worker and driver sends its task events to the GCS, and how many it holds
    /// between sends (more are dropped and counted, never waited for). Ray's names and defaults.
    public static let taskEventsReportIntervalMilliseconds = Setting("task_events_report_interval_ms", 1000)
    public static let taskEventsMaxBufferSize = Setting("task_events_max_buffer_size", 100_000)
    /// Ray's default is 10,000 per report; ours is 1,000: at 10,000 the GCS's merging cost the
    /// multi-client task rate ~25% on this project's 2-core machine, at 1,000 ~10%
    /// (docs/benchmarks.md). A process making tasks faster reports them over the following seconds
    /// (its buffer holds 100,000), dropping and counting what does not fit.
    public static let taskEventsSendBatchSize = Setting("task_events_send_batch_size", 1_000)

    /// Values set in code win over the environment, which wins over defaults.
    private let overrides: [String: String]
    private let environment: @Sendable (String) -> String?

    /// The process's configuration: environment variables over defaults.
    public init(overrides: [String: String] = [:]) {
        self.init(overrides: overrides, environment: { name in getenv(name).map { String(cString: $0) } })
    }

    /// A configuration that reads "environment variables" from `environment` (for tests).
    public init(overrides: [String: String] = [:], environment: @escaping @Sendable (String) -> String?) {
        self.overrides = overrides
        self.environment = environment
    }

    /// The value of `setting`; a value that does not parse is an error naming the setting.
    public func value<Value>(_ setting: Setting<Value>) throws(ConfigError) -> Value {
        if let text = overrides[setting.name] {
            guard let value = setting.parse(text) else { throw ConfigError(setting: setting.name, text: text) }
            return value
        }
        if let text = environment(setting.environmentVariable) {
            guard let value = setting.parse(text) else {
                throw ConfigError(setting: setting.environmentVariable, text: text)
            }
            return value
        }
        return setting.defaultValue
    }

    /// The value of `setting`, or its default when the configured text does not parse.
    public subscript<Value>(_ setting: Setting<Value>) -> Value {
        (try? value(setting)) ?? setting.defaultValue
    }
}

/// A configured value that does not parse.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var setting: String
    public var text: String
    public var description: String { "\(setting)='\(text)' is not a valid value" }
}
