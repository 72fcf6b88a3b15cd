import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import RayCommon
import RayJobs

/// Ray's Jobs REST API (`ray/dashboard/modules/job/job_head.py`): paths, JSON, status codes and
/// error texts as Ray 2.60 has them (../shared/notes/ray-wire-formats.md §2a).
struct JobsAPI: Sendable {
    let options: Dashboard.Options
    let store: JobStore
    let supervisors = Supervisors()

    static let maxJobRequestBytes = 16 * 1024 * 1024

    func addRoutes(to router: Router<BasicWebSocketRequestContext>) {
        router.post("/api/jobs/") { request, _ in try await submit(request) }
        router.get("/api/jobs/") { _, _ in try await list() }
        router.get("/api/jobs/{id}") { _, context in try await details(context.parameters.get("id") ?? "") }
        router.post("/api/jobs/{id}/stop") { _, context in try await stop(context.parameters.get("id") ?? "") }
        router.delete("/api/jobs/{id}") { _, context in try await delete(context.parameters.get("id") ?? "") }
        router.get("/api/jobs/{id}/logs") { _, context in try await logs(context.parameters.get("id") ?? "") }
        router.ws("/api/jobs/{id}/logs/tail") { _, context in
            let id = context.parameters.get("id") ?? ""
            return try await store.info(id) == nil ? .dontUpgrade : .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            try await tail(context.requestContext.parameters.get("id") ?? "", inbound: inbound, outbound: outbound)
        }
        router.get("/api/packages/{protocol}/{name}") { _, context in
            try await package(protocol: context.parameters.get("protocol"), name: context.parameters.get("name"), body: nil)
        }
        router.put("/api/packages/{protocol}/{name}") { request, context in
            try await package(protocol: context.parameters.get("protocol"), name: context.parameters.get("name"), body: request)
        }
    }

    static func notFound(_ id: String) -> Response { HTTP.text("Job \(id) does not exist", status: .notFound) }

    func logFile(_ id: String) -> String { "\(options.logDirectory)/job-driver-\(id).log" }

    // MARK: submit

    func submit(_ request: Request) async throws -> Response {
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: Self.maxJobRequestBytes) } catch is NIOTooManyBytesError {
            return HTTP.text("The job request is larger than \(Self.maxJobRequestBytes) bytes", status: .contentTooLarge)
        } catch {
            return HTTP.text("The job request did not arrive whole: \(error)", status: .badRequest)
        }
        let parsed: JobSubmitRequest
        do { parsed = try JobSubmitRequest.parse(body.readableBytesView) } catch {
            return HTTP.text(error.description, status: .badRequest)
        }
        let id = parsed.submissionID ?? SubmissionID.generate()
        var info = JobInfo(submissionID: id, entrypoint: parsed.entrypoint, startTime: JobInfo.now())
        info.metadata = parsed.metadata
        info.runtimeEnvJSON = parsed.runtimeEnv.text
        info.entrypointNumCPUs = parsed.entrypointNumCPUs
        info.entrypointNumGPUs = parsed.entrypointNumGPUs
        info.entrypointMemory = parsed.entrypointMemory
        info.entrypointResources = parsed.entrypointResources
        guard try await store.create(info) else {
            return HTTP.text("Job with submission_id \(id) already exists. Please use a different submission_id.", status: .badRequest)
        }
        do {
            let pid = try supervisors.start(id, options: options, logFile: logFile(id))
            try await store.setSupervisor(id, pid: pid)
            options.onSupervisorStarted(pid)
        } catch {
            info.status = .FAILED
            info.errorType = .JOB_SUPERVISOR_ACTOR_START_FAILURE
            info.message = "Failed to start the job supervisor: \(error)"
            info.endTime = JobInfo.now()
            try? await store.update(info)
        }
        return HTTP.json(.object(["job_id": .string(id), "submission_id": .string(id)]))
    }

    // MARK: read

    /// The job's info, after noticing a supervisor that died without recording the end.
    func current(_ id: String) async throws -> JobInfo? {
        guard var info = try await store.info(id) else { return nil }
        guard !info.status.isTerminal, let pid = try await store.supervisor(id), !supervisors.isAlive(pid) else { return info }
        // It may have recorded the end just before exiting: read again before overwriting anything.
        guard let again = try await store.info(id), !again.status.isTerminal else { return try await store.info(id) }
        info = again
        info.status = .FAILED
        info.errorType = .JOB_SUPERVISOR_ACTOR_DIED
        let words = Supervisors.lastWords(id, logDirectory: options.logDirectory)
        info.message = "The job's supervisor process (pid \(pid)) died before the job ended." + (words.isEmpty ? "" : " Its last words:\n\(words)")
        info.endTime = JobInfo.now()
        if let group = try await store.reservation(id) { await EntrypointReservation.release(group, gcs: store.gcs, patience: .seconds(5)) }
        try await store.update(info)
        return info
    }

    func driver(for id: String, in drivers: [DriverJob]) -> DriverJob? {
        drivers.last { $0.submissionID == id }
    }

    func details(_ id: String) async throws -> Response {
        let drivers = try await store.drivers()
        if let info = try await current(id) {
            return HTTP.json(JobDetails.json(info, driver: driver(for: id, in: drivers), agentAddress: nil))
        }
        if let driver = drivers.first(where: { $0.jobID == id && $0.submissionID == nil }) {
            return HTTP.json(JobDetails.json(driver: driver))
        }
        if let info = try await drivers.first(where: { $0.jobID == id }).flatMap({ $0.submissionID }).asyncMap(current) {
            return HTTP.json(JobDetails.json(info, driver: driver(for: info.submissionID, in: drivers), agentAddress: nil))
        }
        return Self.notFound(id)
    }

    /// Submitted jobs first, then drivers that connected by themselves (as Ray lists them).
    func allDetails() async throws -> [JSON] {
        let drivers = try await store.drivers()
        var rows: [JSON] = []
        for info in try await store.all() {
            let info = try await current(info.submissionID) ?? info
            rows.append(JobDetails.json(info, driver: driver(for: info.submissionID, in: drivers), agentAddress: nil))
        }
        return rows + drivers.filter { $0.submissionID == nil }.map(JobDetails.json(driver:))
    }

    func list() async throws -> Response { HTTP.json(.array(try await allDetails())) }

    func isDriverOnly(_ id: String) async throws -> Bool {
        try await store.drivers().contains { $0.jobID == id && $0.submissionID == nil }
    }

    // MARK: stop, delete, logs

    func stop(_ id: String) async throws -> Response {
        guard let info = try await current(id) else {
            return try await isDriverOnly(id) ? HTTP.text("Can only stop submission type jobs", status: .badRequest) : Self.notFound(id)
        }
        if info.status.isTerminal { return HTTP.json(.object(["stopped": .bool(false)])) }
        // Right after a submission the supervisor's pid may not be recorded yet.
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if let pid = try await store.supervisor(id), supervisors.isAlive(pid) {
                kill(pid, SIGTERM)
                return HTTP.json(.object(["stopped": .bool(true)]))
            }
            if let now = try await current(id), now.status.isTerminal { return HTTP.json(.object(["stopped": .bool(false)])) }
            try await Task.sleep(for: .milliseconds(20))
        }
        return HTTP.text("Job \(id) has no running supervisor to stop", status: .internalServerError)
    }

    func delete(_ id: String) async throws -> Response {
        guard let info = try await current(id) else {
            return try await isDriverOnly(id) ? HTTP.text("Can only delete submission type jobs", status: .badRequest) : Self.notFound(id)
        }
        guard info.status.isTerminal else {
            return HTTP.text("Attempted to delete job '\(id)', but it is in a non-terminal state \(info.status.rawValue).",
                             status: .badRequest)
        }
        try await store.delete(id)
        try? FileManager.default.removeItem(atPath: logFile(id))
        return HTTP.json(.object(["deleted": .bool(true)]))
    }

    func logs(_ id: String) async throws -> Response {
        guard try await store.info(id) != nil else {
            return try await isDriverOnly(id) ? HTTP.text("Can only get logs of submission type jobs", status: .badRequest) : Self.notFound(id)
        }
        let data = FileManager.default.contents(atPath: logFile(id)) ?? Data()
        return HTTP.json(.object(["logs": .string(String(decoding: data, as: UTF8.self))]))
    }

    /// Sends the log as it grows, in TEXT frames; closes (1000) once the job has ended and the
    /// whole log went out, or when the client goes away.
    func tail(_ id: String, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await _ in inbound {}  // ends when the client closes
            }
            group.addTask {
                var reader = LogReader(path: logFile(id))
                while true {
                    let ended = try await current(id)?.status.isTerminal ?? true
                    let chunk = reader.read(final: ended)
                    if !chunk.isEmpty { try await outbound.write(.text(chunk)) }
                    if ended { return }
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    // MARK: packages

    func package(protocol scheme: String?, name: String?, body request: Request?) async throws -> Response {
        guard let scheme, let name, scheme == "gcs", RuntimeEnvPackage.validName(name) else {
            return HTTP.text("A package is named gcs/<name>.zip (one path component), got \(scheme ?? "")/\(name ?? "")",
                             status: .badRequest)
        }
        let uri = "gcs://\(name)"
        guard let request else {
            return try await store.packageExists(uri) ? HTTP.text("Package \(uri) exists") : HTTP.text("Package \(uri) not found", status: .notFound)
        }
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: RuntimeEnvPackage.maxBytes) } catch is NIOTooManyBytesError {
            return HTTP.text("The package is larger than \(RuntimeEnvPackage.maxBytes) bytes (100 MiB)", status: .contentTooLarge)
        } catch {
            return HTTP.text("The package upload did not complete: \(error)", status: .badRequest)
        }
        let bytes = Data(body.readableBytesView)
        do { try RuntimeEnvPackage.validate(bytes) } catch {
            return HTTP.text("Invalid package \(uri): \(error)", status: .badRequest)
        }
        try await store.putPackage(uri, bytes)
        return HTTP.text("Package \(uri) uploaded")
    }
}

/// Reads what a log file gained since the last read, in whole lines (so no UTF-8 character is
/// split between frames) unless `final`.
struct LogReader {
    let path: String
    var offset: UInt64 = 0

    mutating func read(final: Bool) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        try? handle.seek(toOffset: offset)
        var data = handle.readDataToEndOfFile()
        if !final, let newline = data.lastIndex(of: UInt8(ascii: "\n")) {
            data = data[data.startIndex...newline]
        } else if !final {
            return ""
        }
        offset += UInt64(data.count)
        return String(decoding: data, as: UTF8.self)
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T?) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
