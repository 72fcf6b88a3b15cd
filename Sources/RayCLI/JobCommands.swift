import ArgumentParser
import Foundation
import RayCommon
import RayJobs

/// `ray job …`: Ray's job CLI against the Jobs REST API, with Ray's commands, options and messages.
struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job", abstract: "Submit, watch and stop jobs on a cluster's head (its Jobs REST API).",
        subcommands: [JobSubmit.self, JobStatusCommand.self, JobLogs.self, JobStop.self, JobList.self, JobDelete.self])
}

struct JobAddress: ParsableArguments {
    @Option(help: "The head's dashboard (http://HOST:8265), or its GCS (HOST:PORT). Default: $RAY_API_SERVER_ADDRESS, $RAY_ADDRESS, then the cluster `ray start` started.")
    var address: String?

    @Option(name: .customLong("temp-dir"), help: "Where `ray start` keeps sessions (default $RAY_TMPDIR or /tmp/swift-ray).")
    var tempDir: String?

    func client() async throws -> JobClient {
        let client = try await JobClient.connect(address, tempDir: tempDir)
        say("Job submission server address: \(client.url)")
        return client
    }
}

func say(_ line: String) {
    print(line)
    fflush(nil)
}

func banner(_ line: String) {
    let rule = String(repeating: "-", count: line.count)
    say("\(rule)\n\(line)\n\(rule)")
}

extension JobClient {
    func details(_ id: String) async throws -> JSON { try await expect("GET", "/api/jobs/\(id)") }

    /// Prints the log as it grows until the job ends (polling the logs endpoint).
    func follow(_ id: String) async throws -> JSON {
        var printed = 0
        while true {
            let details = try await self.details(id)
            let done = JobStatus(rawValue: details["status"]?.stringValue ?? "")?.isTerminal ?? true
            let logs = try await expect("GET", "/api/jobs/\(id)/logs")["logs"]?.stringValue ?? ""
            let bytes = Array(logs.utf8)
            if bytes.count > printed {
                FileHandle.standardOutput.write(Data(bytes[printed...]))
                printed = bytes.count
            }
            if done { return details }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Ray's closing line for a job's state; true if it failed.
    @discardableResult
    func report(_ id: String, _ details: JSON) -> Bool {
        let status = details["status"]?.stringValue ?? "?"
        switch status {
        case "SUCCEEDED": banner("Job '\(id)' succeeded")
        case "FAILED":
            banner("Job '\(id)' failed")
            if let message = details["message"]?.stringValue { say("Status message: \(message)") }
            return true
        case "STOPPED": banner("Job '\(id)' was stopped")
        default:
            say("Status for job '\(id)': \(status)")
            if let message = details["message"]?.stringValue { say("Status message: \(message)") }
        }
        return false
    }
}

struct JobSubmit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "submit", abstract: "Submit a job: the command after --.")

    @OptionGroup var target: JobAddress
    @Option(name: .customLong("submission-id")) var submissionID: String?
    @Option(name: .customLong("working-dir"), help: "A local directory, uploaded and unpacked for the job (its working directory).")
    var workingDir: String?
    @Option(name: .customLong("runtime-env-json"), help: "The runtime_env as JSON (env_vars, working_dir).")
    var runtimeEnvJSON: String?
    @Option(name: .customLong("metadata-json")) var metadataJSON: String?
    @Option(name: .customLong("entrypoint-num-cpus")) var entrypointNumCPUs: Double?
    @Option(name: .customLong("entrypoint-num-gpus")) var entrypointNumGPUs: Double?
    @Option(name: .customLong("entrypoint-memory")) var entrypointMemory: Int?
    @Option(name: .customLong("entrypoint-resources")) var entrypointResources: String?
    @Flag(name: .customLong("no-wait"), help: "Return once submitted, without following the logs.") var noWait = false
    @Argument(parsing: .postTerminator, help: "The entrypoint command.") var entrypoint: [String] = []

    func validate() throws {
        if entrypoint.isEmpty { throw ValidationError("give the entrypoint after --, e.g. ray job submit -- ./my-program") }
    }

    func run() async throws {
        let client = try await target.client()
        var runtimeEnv: [JSON.Member] = []
        if let runtimeEnvJSON {
            guard case .object(let members) = try JSON.parse(runtimeEnvJSON) else { throw ValidationError("--runtime-env-json must be a JSON object") }
            runtimeEnv = members
        }
        if let workingDir {
            let uri = try await client.upload(directory: workingDir, progress: say)
            runtimeEnv.removeAll { $0.key == "working_dir" }
            runtimeEnv.append(.init("working_dir", .string(uri)))
        }
        var body: [JSON.Member] = [.init("entrypoint", .string(Self.commandLine(entrypoint))), .init("runtime_env", .object(runtimeEnv))]
        body.append(.init("metadata", metadataJSON.map { (try? JSON.parse($0)) ?? .object([]) } ?? .object([])))
        if let submissionID { body.append(.init("submission_id", .string(submissionID))) }
        if let entrypointNumCPUs { body.append(.init("entrypoint_num_cpus", .double(entrypointNumCPUs))) }
        if let entrypointNumGPUs { body.append(.init("entrypoint_num_gpus", .double(entrypointNumGPUs))) }
        if let entrypointMemory { body.append(.init("entrypoint_memory", .int(Int64(entrypointMemory)))) }
        if let entrypointResources { body.append(.init("entrypoint_resources", try JSON.parse(entrypointResources))) }
        let reply = try await client.expect("POST", "/api/jobs/", body: Data(JSON.object(body).text.utf8))
        let id = reply["submission_id"]?.stringValue ?? "?"
        banner("Job '\(id)' submitted successfully")
        if noWait {
            say("Query the logs of the job:\n  ray job logs \(id)\nQuery the status of the job:\n  ray job status \(id)\nRequest the job to be stopped:\n  ray job stop \(id)")
            return
        }
        say("Tailing logs until the job exits (disable with --no-wait):")
        let details = try await client.follow(id)
        if client.report(id, details) { throw ExitCode(1) }
    }

    /// The words as one shell command (quoted where the shell would split or expand them).
    static func commandLine(_ words: [String]) -> String {
        words.map { word in
            word.isEmpty || word.contains(where: { " \t\n'\"\\$`|&;<>()*?[]{}!#~".contains($0) })
                ? "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'" : word
        }.joined(separator: " ")
    }
}

struct JobStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "A job's status.")
    @OptionGroup var target: JobAddress
    @Argument var id: String

    func run() async throws {
        let client = try await target.client()
        client.report(id, try await client.details(id))
    }
}

struct JobLogs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "A job's output.")
    @OptionGroup var target: JobAddress
    @Flag(name: [.customShort("f"), .customLong("follow")], help: "Keep printing until the job ends.") var follow = false
    @Argument var id: String

    func run() async throws {
        let client = try await target.client()
        if follow {
            _ = try await client.follow(id)
        } else {
            FileHandle.standardOutput.write(Data((try await client.expect("GET", "/api/jobs/\(id)/logs")["logs"]?.stringValue ?? "").utf8))
        }
    }
}

struct JobStop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop a job (SIGTERM, then SIGKILL).")
    @OptionGroup var target: JobAddress
    @Flag(name: .customLong("no-wait")) var noWait = false
    @Argument var id: String

    func run() async throws {
        let client = try await target.client()
        say("Attempting to stop job '\(id)'")
        let stopped = try await client.expect("POST", "/api/jobs/\(id)/stop")["stopped"] == .bool(true)
        if !stopped {
            say("Job '\(id)' has already ended")
            return
        }
        if noWait { return }
        say("Waiting for job '\(id)' to exit (disable with --no-wait):")
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let details = try await client.details(id)
            if JobStatus(rawValue: details["status"]?.stringValue ?? "")?.isTerminal == true {
                client.report(id, details)
                return
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw CLIError("job '\(id)' did not end within 60 s of the stop")
    }
}

struct JobList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Every job the cluster knows.")
    @OptionGroup var target: JobAddress

    func run() async throws {
        let client = try await target.client()
        guard case .array(let jobs) = try await client.expect("GET", "/api/jobs/") else { throw CLIError("the job list is not a list") }
        let rows = jobs.map { job in
            [job["submission_id"]?.stringValue ?? job["job_id"]?.stringValue ?? "", job["type"]?.stringValue ?? "",
             job["status"]?.stringValue ?? "", job["entrypoint"]?.stringValue ?? ""]
        }
        let headers = ["SUBMISSION_ID", "TYPE", "STATUS", "ENTRYPOINT"]
        let widths = headers.indices.map { column in ([headers] + rows).map { $0[column].count }.max() ?? 0 }
        for row in [headers] + rows {
            let cells = row.enumerated().map { $0 == row.count - 1 ? $1 : $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
            say(cells.joined(separator: "  "))
        }
    }
}

struct JobDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Forget an ended job and its logs.")
    @OptionGroup var target: JobAddress
    @Argument var id: String

    func run() async throws {
        let client = try await target.client()
        _ = try await client.expect("DELETE", "/api/jobs/\(id)")
        say("Job '\(id)' deleted successfully")
    }
}
