import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import RayCommon
import RayGCSClient
import RayJobs
import RayProtos
import RayRPC
import RayServices

/// Ray's log API (`GET /api/v0/logs`, `/api/v0/logs/file`, `/api/v0/logs/stream`), which Ray's
/// `ray logs` calls: a node's log files by category, and one file's last lines (then, streamed,
/// what is appended), found by name or by the actor, task, worker pid or job that wrote it. Each
/// node's raylet serves its own log directory (ListLogs, StreamLog).
struct LogsAPI: Sendable {
    let gcs: GCSClient
    let jobs: JobsAPI

    struct BadRequest: Error, CustomStringConvertible {
        let status: HTTPResponse.Status
        let description: String
    }

    func addRoutes(to router: Router<BasicWebSocketRequestContext>) {
        router.get("/api/v0/logs") { request, _ in
            let query = Self.parameters(request)
            do {
                let node = try await node(id: query["node_id"], ip: query["node_ip"], required: true)
                let files = try await list(on: node, glob: query["glob"] ?? "*", timeout: try Self.timeout(query))
                return HTTP.json(StateQuery.envelope(Self.categorized(files)))
            } catch let error as BadRequest {
                return HTTP.json(StateQuery.failure(error.description), status: error.status)
            } catch {
                return HTTP.json(StateQuery.failure("Failed to list the node's log files: \(error)"), status: .internalServerError)
            }
        }
        router.get("/api/v0/logs/{media_type}") { request, context in
            let media = context.parameters.get("media_type") ?? ""
            guard media == "file" || media == "stream" else {
                return HTTP.text("Unknown media type \(media): use file or stream", status: .notFound)
            }
            do {
                return try await file(Self.parameters(request), follow: media == "stream")
            } catch let error as BadRequest {
                return HTTP.text(error.description, status: error.status)
            } catch {
                return HTTP.text("Failed to read the log: \(error)", status: .internalServerError)
            }
        }
    }

    static func parameters(_ request: Request) -> [String: String] {
        var values: [String: String] = [:]
        for (key, value) in request.uri.queryParameters { values[String(key)] = String(value) }
        return values
    }

    static func timeout(_ query: [String: String]) throws -> Duration {
        do { return try StateQuery.timeout(query.map { ($0.key, $0.value) }) } catch {
            throw BadRequest(status: .badRequest, description: error.description)
        }
    }

    /// Ray's `_categorize_log_files` (dashboard/modules/log/log_manager.py), in the files' order.
    static func categorized(_ files: [String]) -> JSON {
        var order: [String] = []
        var groups: [String: [String]] = [:]
        for file in files {
            let category: String
            if file.contains("worker") && file.hasSuffix(".out") { category = "worker_out" }
            else if file.contains("worker") && file.hasSuffix(".err") { category = "worker_err" }
            else if file.contains("core-worker") && file.hasSuffix(".log") { category = "core_worker" }
            else if file.contains("core-driver") && file.hasSuffix(".log") { category = "driver" }
            else if file.contains("raylet.") { category = "raylet" }
            else if file.contains("gcs_server.") { category = "gcs_server" }
            else if file.contains("log_monitor") { category = "internal" }
            else if file.contains("monitor") { category = "autoscaler" }
            else if file.contains("agent.") { category = "agent" }
            else if file.contains("dashboard.") { category = "dashboard" }
            else { category = "internal" }
            if groups[category] == nil { order.append(category) }
            groups[category, default: []].append(file)
        }
        return .object(order.map { JSON.Member($0, .array(groups[$0]!.map(JSON.string))) })
    }

    /// The alive node by ID, or by IP (the head first when several share it), or the head.
    func node(id: String?, ip: String?, required: Bool) async throws -> Ray_Rpc_GcsNodeInfo {
        let alive = try await gcs.nodes().filter { $0.state == .alive }
        if let id, !id.isEmpty {
            guard let node = alive.first(where: { Hex.string($0.nodeID) == id.lowercased() }) else {
                throw BadRequest(status: .notFound, description: "Node \(id) is not alive or does not exist in the cluster.")
            }
            return node
        }
        if let ip, !ip.isEmpty {
            let matching = alive.filter { $0.nodeManagerAddress == ip }
            guard let node = matching.first(where: \.isHeadNode) ?? matching.first else {
                throw BadRequest(status: .notFound, description: "Cannot find matching node_id for a given node ip \(ip)")
            }
            return node
        }
        if required {
            throw BadRequest(status: .badRequest, description: "Both node id and node ip are not provided. Please provide at least one of them.")
        }
        guard let head = alive.first(where: \.isHeadNode) else { throw BadRequest(status: .notFound, description: "The cluster has no live head node.") }
        return head
    }

    func raylet(_ node: Ray_Rpc_GcsNodeInfo) throws -> RPCChannel {
        try RPCChannel(host: node.nodeManagerAddress, port: Int(node.nodeManagerPort))
    }

    func list(on node: Ray_Rpc_GcsNodeInfo, glob: String, timeout: Duration) async throws -> [String] {
        var request = Ray_Rpc_ListLogsRequest()
        request.glob = glob
        return try await raylet(node).unary(NodeManagerMethods.listLogs, request, options: CallOptions(timeout: timeout)).logFiles
    }

    /// `glob` matching exactly `name`.
    static func literal(_ name: String) -> String {
        var escaped = ""
        for character in name {
            if "*?[]\\".contains(character) { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }

    /// The node and file a request names, by Ray's rules: a file name, a job's submission ID, an
    /// actor, a task, or a worker's pid on a node.
    func resolve(_ query: [String: String], timeout: Duration) async throws -> (Ray_Rpc_GcsNodeInfo, String) {
        let suffix = query["suffix"] ?? "out"
        guard suffix == "out" || suffix == "err" else { throw BadRequest(status: .badRequest, description: "Suffix \(suffix) is not supported. ") }
        func workerFile(node: Ray_Rpc_GcsNodeInfo, pattern: String, what: String) async throws -> (Ray_Rpc_GcsNodeInfo, String) {
            guard let name = try await list(on: node, glob: pattern, timeout: timeout).first else {
                throw BadRequest(status: .notFound, description: "Could not find a log file for \(what) on node \(Hex.string(node.nodeID)).")
            }
            return (node, name)
        }
        if let filename = query["filename"], !filename.isEmpty {
            guard !filename.hasPrefix("/"), !filename.split(separator: "/").contains("..") else {
                throw BadRequest(status: .badRequest, description: "The log file name \(filename) must be relative to the node's log directory, without '..'.")
            }
            let node = try await node(id: query["node_id"], ip: query["node_ip"], required: false)
            guard try await list(on: node, glob: Self.literal(filename), timeout: timeout).contains(filename) else {
                throw BadRequest(status: .notFound, description: "Log file \(filename) does not exist on node \(Hex.string(node.nodeID)).")
            }
            return (node, filename)
        }
        if let id = query["submission_id"], !id.isEmpty {
            guard let info = try await jobs.store.info(id) else { throw BadRequest(status: .notFound, description: "Job \(id) does not exist") }
            let node = try await node(id: info.driverNodeID, ip: nil, required: false)
            return (node, "job-driver-\(id).log")
        }
        if let id = query["actor_id"], !id.isEmpty {
            guard let actor = try await gcs.actors().first(where: { Hex.string($0.actorID) == id.lowercased() }) else {
                throw BadRequest(status: .notFound, description: "Actor \(id) does not exist.")
            }
            guard !actor.address.workerID.isEmpty else { throw BadRequest(status: .notFound, description: "Actor \(id) has not started on a worker yet.") }
            let node = try await node(id: Hex.string(actor.address.nodeID), ip: nil, required: true)
            return try await workerFile(node: node, pattern: "worker-\(Hex.string(actor.address.workerID))-*.\(suffix)", what: "actor \(id)")
        }
        if let id = query["task_id"], !id.isEmpty {
            let attempt = Int32(query["attempt_number"] ?? "0") ?? 0
            let records = try await gcs.taskEvents().tasks.filter { Hex.string($0.task.taskID) == id.lowercased() }
            guard let task = (records.first { $0.task.attemptNumber == attempt } ?? records.last)?.task else {
                throw BadRequest(status: .notFound, description: "Task \(id) does not exist.")
            }
            guard !task.workerID.isEmpty else { throw BadRequest(status: .notFound, description: "Task \(id) has not run on a worker yet.") }
            let node = try await node(id: Hex.string(task.nodeID), ip: nil, required: true)
            return try await workerFile(node: node, pattern: "worker-\(Hex.string(task.workerID))-*.\(suffix)", what: "task \(id)")
        }
        if let pid = query["pid"], !pid.isEmpty {
            guard Int32(pid) != nil else { throw BadRequest(status: .badRequest, description: "pid must be an integer, got '\(pid)'") }
            guard query["node_id"] != nil || query["node_ip"] != nil else {
                throw BadRequest(status: .badRequest, description: "Node id needs to be specified for resolving filenames of pid \(pid)")
            }
            let node = try await node(id: query["node_id"], ip: query["node_ip"], required: true)
            return try await workerFile(node: node, pattern: "worker-*-\(pid).\(suffix)", what: "worker pid \(pid)")
        }
        throw BadRequest(status: .badRequest, description: "Could not find a log file: give one of filename, actor_id, task_id, pid or submission_id.")
    }

    /// The file's last `lines` (Ray's default 1000; -1: all), then, when following, what is appended
    /// until the caller goes away.
    func file(_ query: [String: String], follow: Bool) async throws -> Response {
        let timeout = try Self.timeout(query)
        guard let lines = Int64(query["lines"] ?? "1000"), lines >= -1 else {
            throw BadRequest(status: .badRequest, description: "lines must be an integer of -1 or more, got '\(query["lines"] ?? "")'")
        }
        let interval = Double(query["interval"] ?? "") ?? 0.5
        let (node, name) = try await resolve(query, timeout: timeout)
        var request = Ray_Rpc_StreamLogRequest()
        request.filename = name
        request.lines = lines
        request.keepAlive = follow
        request.intervalS = interval
        let channel = try raylet(node)
        let streamRequest = request
        // A followed file streams until the caller leaves; a whole file gets its own deadline.
        let options = CallOptions(timeout: follow ? .seconds(86_400) : max(timeout, .seconds(30)))
        let body = ResponseBody { writer in
            try await channel.serverStreaming(NodeManagerMethods.streamLog, streamRequest, options: options) { chunks in
                for try await chunk in chunks { try await writer.write(ByteBuffer(bytes: chunk.data)) }
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/plain", .contentDisposition: "attachment; filename=\"file.txt\""], body: body)
    }
}
