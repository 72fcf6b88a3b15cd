import RayCommon

/// The body of `POST /api/jobs/`, checked as Ray's `JobSubmitRequest` dataclass checks it: keys
/// whose value is null are dropped, an unknown key or a wrong type is an error with Ray's wording.
public struct JobSubmitRequest: Sendable, Equatable {
    public var entrypoint: String
    public var submissionID: String?
    public var runtimeEnv: JSON = .object([])
    public var metadata: [String: String] = [:]
    public var entrypointNumCPUs: Double?
    public var entrypointNumGPUs: Double?
    public var entrypointMemory: Int64?
    public var entrypointResources: [String: Double]?
    public var entrypointLabelSelector: [String: String]?

    public init(entrypoint: String) { self.entrypoint = entrypoint }

    /// The runtime_env fields swift-ray acts on. Ray's Python-only ones (pip, conda, py_modules,
    /// uv, py_executable, container, image_uri) would be silently ignored, so they are refused.
    public static let runtimeEnvFields: Set<String> = ["working_dir", "env_vars", "config", "excludes"]

    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    public static func parse(_ body: some Collection<UInt8>) throws(Invalid) -> JobSubmitRequest {
        let json: JSON
        do { json = try JSON.parse(body) } catch { throw Invalid("the request body is not valid JSON: \(error)") }
        return try parse(json)
    }

    public static func parse(_ json: JSON) throws(Invalid) -> JobSubmitRequest {
        guard case .object(let members) = json else {
            throw Invalid("TypeError: the request body must be a JSON object, got \(json.pythonTypeName)")
        }
        var fields: [String: JSON] = [:]
        for member in members where member.value != .null { fields[member.key] = member.value }
        let known: Set = ["entrypoint", "submission_id", "job_id", "runtime_env", "metadata", "entrypoint_num_cpus",
                          "entrypoint_num_gpus", "entrypoint_memory", "entrypoint_resources", "entrypoint_label_selector"]
        if let unknown = members.map(\.key).first(where: { !known.contains($0) }) {
            throw Invalid("TypeError: JobSubmitRequest.__init__() got an unexpected keyword argument '\(unknown)'")
        }
        guard let entrypointValue = fields["entrypoint"] else {
            throw Invalid("TypeError: JobSubmitRequest.__init__() missing 1 required positional argument: 'entrypoint'")
        }
        guard case .string(let entrypoint) = entrypointValue else {
            throw Invalid("TypeError: entrypoint must be a string, got \(entrypointValue.pythonTypeName)")
        }
        if entrypoint.allSatisfy(\.isWhitespace) { throw Invalid("ValueError: entrypoint must not be empty") }
        var request = JobSubmitRequest(entrypoint: entrypoint)
        for key in ["submission_id", "job_id"] {
            guard let value = fields[key] else { continue }
            guard case .string(let id) = value else { throw Invalid("TypeError: \(key) must be a string, got \(value.pythonTypeName)") }
            if let problem = SubmissionID.validate(id) { throw Invalid("ValueError: \(problem)") }
            // job_id is Ray's deprecated name for submission_id; submission_id wins when both are given.
            if key == "submission_id" || request.submissionID == nil { request.submissionID = id }
        }
        if let submission = fields["submission_id"]?.stringValue, let job = fields["job_id"]?.stringValue, submission != job {
            throw Invalid("ValueError: submission_id (\(submission)) and job_id (\(job)) differ; give one of them")
        }
        if let value = fields["runtime_env"] {
            guard case .object(let env) = value else {
                throw Invalid("TypeError: runtime_env must be a dict, got \(value.pythonTypeName)")
            }
            try checkRuntimeEnv(env)
            request.runtimeEnv = value
        }
        if let value = fields["metadata"] {
            request.metadata = try stringMap(value, "metadata")
        }
        request.entrypointNumCPUs = try amount(fields["entrypoint_num_cpus"], "entrypoint_num_cpus")
        request.entrypointNumGPUs = try amount(fields["entrypoint_num_gpus"], "entrypoint_num_gpus")
        if let value = fields["entrypoint_memory"] {
            guard case .int(let bytes) = value else {
                throw Invalid("TypeError: entrypoint_memory must be an int, got \(value.pythonTypeName)")
            }
            guard bytes >= 0 else { throw Invalid("ValueError: entrypoint_memory must be a non-negative integer, got \(bytes)") }
            request.entrypointMemory = bytes
        }
        if let value = fields["entrypoint_resources"] {
            guard case .object(let members) = value else {
                throw Invalid("TypeError: entrypoint_resources must be a dict, got \(value.pythonTypeName)")
            }
            var resources: [String: Double] = [:]
            for member in members {
                guard let amount = member.value.numberValue else {
                    throw Invalid("TypeError: entrypoint_resources values must be numbers, got \(member.value.pythonTypeName) for '\(member.key)'")
                }
                if ["CPU", "GPU", "memory"].contains(member.key) {
                    throw Invalid("ValueError: use entrypoint_num_cpus, entrypoint_num_gpus or entrypoint_memory for \(member.key), not entrypoint_resources")
                }
                guard amount >= 0, amount.isFinite else { throw Invalid("ValueError: entrypoint_resources['\(member.key)'] cannot be \(amount)") }
                resources[member.key] = amount
            }
            request.entrypointResources = resources
        }
        if let value = fields["entrypoint_label_selector"] {
            request.entrypointLabelSelector = try stringMap(value, "entrypoint_label_selector")
        }
        return request
    }

    static func amount(_ value: JSON?, _ name: String) throws(Invalid) -> Double? {
        guard let value else { return nil }
        guard let amount = value.numberValue else {
            throw Invalid("TypeError: \(name) must be a number, got \(value.pythonTypeName)")
        }
        guard amount >= 0, amount.isFinite else { throw Invalid("ValueError: \(name) must be a non-negative number, got \(amount)") }
        return amount
    }

    static func stringMap(_ value: JSON, _ name: String) throws(Invalid) -> [String: String] {
        guard case .object(let members) = value else {
            throw Invalid("TypeError: \(name) must be a dict, got \(value.pythonTypeName)")
        }
        var map: [String: String] = [:]
        for member in members {
            guard case .string(let text) = member.value else {
                throw Invalid("TypeError: \(name) must be a dict of strings to strings, got \(member.value.pythonTypeName) for '\(member.key)'")
            }
            map[member.key] = text
        }
        return map
    }

    static func checkRuntimeEnv(_ env: [JSON.Member]) throws(Invalid) {
        for member in env {
            guard runtimeEnvFields.contains(member.key) else {
                throw Invalid("ValueError: runtime_env field '\(member.key)' is not supported by swift-ray (supported: \(runtimeEnvFields.sorted().joined(separator: ", ")))")
            }
        }
        if let dir = env.last(where: { $0.key == "working_dir" })?.value {
            guard case .string(let uri) = dir else {
                throw Invalid("TypeError: runtime_env['working_dir'] must be a string, got \(dir.pythonTypeName)")
            }
            guard RuntimeEnvPackage.parseURI(uri) != nil else {
                throw Invalid("ValueError: runtime_env['working_dir'] must be a package URI such as gcs://_ray_pkg_<hash>.zip (upload it through /api/packages), got '\(uri)'")
            }
        }
        if let vars = env.last(where: { $0.key == "env_vars" })?.value {
            _ = try stringMap(vars, "runtime_env['env_vars']")
        }
    }

    /// runtime_env.env_vars, if any.
    public var environmentVariables: [String: String] {
        guard let vars = runtimeEnv["env_vars"], case .object(let members) = vars else { return [:] }
        return Dictionary(members.compactMap { m in m.value.stringValue.map { (m.key, $0) } }) { _, last in last }
    }

    /// runtime_env.working_dir (a package URI), if any.
    public var workingDirURI: String? { runtimeEnv["working_dir"]?.stringValue }
}

/// A working-directory package, Ray's way: a zip kept in the GCS under `gcs://_ray_pkg_<hash>.zip`.
public enum RuntimeEnvPackage {
    public static let maxBytes = 100 * 1024 * 1024
    /// The KV namespace packages are kept in.
    public static let kvNamespace = "package"

    /// (protocol, name) of a package URI, if it is one swift-ray keeps: `gcs://<name>.zip`.
    public static func parseURI(_ uri: String) -> (scheme: String, name: String)? {
        guard let range = uri.range(of: "://") else { return nil }
        let scheme = String(uri[..<range.lowerBound])
        let name = String(uri[range.upperBound...])
        guard scheme == "gcs", validName(name) else { return nil }
        return (scheme, name)
    }

    /// A package name is one path component ending in .zip.
    public static func validName(_ name: String) -> Bool {
        name.hasSuffix(".zip") && name.count > 4 && name.count <= 255 && !name.contains("/") && !name.hasPrefix(".")
            && !name.unicodeScalars.contains { $0.value < 0x20 }
    }
}
