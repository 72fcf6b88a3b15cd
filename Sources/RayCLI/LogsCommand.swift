import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import RayCommon

/// `ray logs`: Ray's log CLI over the state API's log endpoints. `ray logs [cluster] [GLOB]` lists
/// the head's (or `--node-id`'s) log files, or prints the one file the glob matches; `ray logs
/// actor|task|worker|job` print the log of what they name.
struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "List a node's log files, or print one (by name, actor, task, worker pid or job).",
        subcommands: [Cluster.self, Actor.self, TaskLog.self, Worker.self, Job.self], defaultSubcommand: Cluster.self)

    /// What every `ray logs` form takes.
    struct Common: ParsableArguments {
        @OptionGroup var target: JobAddress
        @Option(name: .customLong("node-id"), help: "The node whose logs to read (default: the head).") var nodeID: String?
        @Option(name: .customLong("node-ip"), help: "The node, by IP.") var nodeIP: String?
        @Flag(name: [.customShort("f"), .customLong("follow")], help: "Keep printing what is appended.") var follow = false
        @Option(name: [.customShort("t"), .customLong("tail")], help: "Lines from the end (-1: the whole file).") var tail = 1000
        @Option(name: .customLong("interval"), help: "How often to look for more while following (seconds).") var interval: Double?
        @Option(name: .customLong("timeout"), help: "Seconds the API calls may take.") var timeout = 30

        var nodeQuery: [(String, String)] {
            (nodeID.map { [("node_id", $0)] } ?? []) + (nodeIP.map { [("node_ip", $0)] } ?? [])
        }

        func client() async throws -> JobClient { try await JobClient.connect(target.address, tempDir: target.tempDir) }

        /// Prints the file the query names (Ray's preamble first when the output is cut to `tail`).
        func print(_ query: [(String, String)], client given: JobClient? = nil) async throws {
            let client: JobClient
            if let given { client = given } else { client = try await self.client() }
            var parameters = query + nodeQuery + [("lines", String(tail)), ("timeout", String(timeout))]
            if let interval { parameters.append(("interval", String(interval))) }
            let path = "/api/v0/logs/\(follow ? "stream" : "file")?" + parameters.map { "\($0.0)=\(ListCommand.escape($0.1))" }.joined(separator: "&")
            if tail > 0 {
                Swift.print("--- Log has been truncated to last \(tail) lines. Use `--tail` flag to toggle. Set to -1 for getting the entire file. ---\n")
                fflushAll()  // the log itself goes straight to the file descriptor
            }
            try await LogStream.get(client, path)
        }
    }

    struct Cluster: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the node's log files, or print the only one GLOB matches.")
        @Argument(help: "Which files (a glob over names in the node's log folder).") var glob = "*"
        @OptionGroup var common: Common

        func run() async throws {
            let client = try await common.client()
            // The head's logs unless a node is named (Ray's CLI names the head by its IP).
            let node = common.nodeQuery.isEmpty ? [("node_id", try await headNodeID(client))] : common.nodeQuery
            let query = node + [("glob", glob), ("timeout", String(common.timeout))]
            let reply = try await client.call("GET", "/api/v0/logs?" + query.map { "\($0.0)=\(ListCommand.escape($0.1))" }.joined(separator: "&"))
            let body = (try? reply.json()) ?? .null
            guard reply.status == 200, body["result"] == .bool(true), case .object(let groups)? = body["data"]?["result"] else {
                throw CLIError(body["msg"]?.stringValue ?? "the log API answered \(reply.status): \(reply.text)")
            }
            let files = groups.flatMap { group -> [String] in
                guard case .array(let names) = group.value else { return [] }
                return names.compactMap(\.stringValue)
            }
            if files.count == 1 {
                try await common.print([("filename", files[0])] + (common.nodeQuery.isEmpty ? [("node_id", node[0].1)] : []), client: client)
                return
            }
            if let node = common.nodeID { Swift.print("Node ID: \(node)") } else if let ip = common.nodeIP { Swift.print("Node IP: \(ip)") }
            // PyYAML's dump with explicit start and end, as Ray prints it.
            var yaml = "---\n"
            for group in groups {
                yaml += "\(group.key):\n"
                if case .array(let names) = group.value { for name in names { yaml += "- \(name.stringValue ?? "")\n" } }
            }
            if groups.isEmpty { yaml += "{}\n" }
            Swift.print(yaml + "...\n")
        }

        func headNodeID(_ client: JobClient) async throws -> String {
            let reply = try await client.call("GET", "/api/v0/nodes?filter_keys=is_head_node&filter_predicates=%3D&filter_values=True")
            guard case .array(let rows)? = (try? reply.json())?["data"]?["result"]?["result"], let id = rows.first?["node_id"]?.stringValue else {
                throw CLIError("the cluster lists no head node: \(reply.text)")
            }
            return id
        }
    }

    struct Actor: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "actor", abstract: "Print an actor's worker log.")
        @Option(name: [.customShort("a"), .customLong("id")], help: "The actor's ID.") var id: String
        @Option(name: .customLong("err"), help: "out or err.") var suffix = "out"
        @OptionGroup var common: Common
        func run() async throws { try await common.print([("actor_id", id), ("suffix", suffix)]) }
    }

    struct TaskLog: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "task", abstract: "Print the log of the worker that ran a task.")
        @Option(name: .customLong("id"), help: "The task's ID.") var id: String
        @Option(name: .customLong("attempt-number"), help: "Which attempt.") var attempt = 0
        @Option(name: .customLong("suffix"), help: "out or err.") var suffix = "out"
        @OptionGroup var common: Common
        func run() async throws { try await common.print([("task_id", id), ("attempt_number", String(attempt)), ("suffix", suffix)]) }
    }

    struct Worker: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "worker", abstract: "Print a worker's log, by its pid on a node.")
        @Option(name: .customLong("pid"), help: "The worker's pid.") var pid: Int32
        @Option(name: .customLong("suffix"), help: "out or err.") var suffix = "out"
        @OptionGroup var common: Common
        func run() async throws { try await common.print([("pid", String(pid)), ("suffix", suffix)]) }
    }

    struct Job: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "job", abstract: "Print a submitted job's driver log.")
        @Option(name: .customLong("id"), help: "The job's submission ID.") var id: String
        @OptionGroup var common: Common
        func run() async throws { try await common.print([("submission_id", id)]) }
    }
}

/// A GET whose body is printed as it arrives (a followed log streams until interrupted).
enum LogStream {
    final class Printer: NSObject, URLSessionDataDelegate, @unchecked Sendable {
        var status = 0
        var errorText = Data()
        let done: (Error?) -> Void

        init(done: @escaping (Error?) -> Void) { self.done = done }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
            status = (response as? HTTPURLResponse)?.statusCode ?? 0
            completionHandler(.allow)
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
            if status == 200 { FileHandle.standardOutput.write(data) } else { errorText.append(data) }
        }

        func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
            if let error { done(error) } else if status != 200 {
                done(CLIError(String(decoding: errorText, as: UTF8.self)))
            } else {
                done(nil)
            }
        }
    }

    static func get(_ client: JobClient, _ path: String) async throws {
        guard let url = URL(string: client.url + path) else { throw CLIError("not a URL: \(client.url + path)") }
        var request = URLRequest(url: url, timeoutInterval: 86_400)
        if let token = client.token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            let printer = Printer { error in
                if let error { continuation.resume(throwing: error) } else { continuation.resume() }
            }
            let session = URLSession(configuration: .default, delegate: printer, delegateQueue: nil)
            session.dataTask(with: request).resume()
            session.finishTasksAndInvalidate()
        }
    }
}

/// Flushes C's stdout (Swift's print buffers there) before writing to the descriptor directly.
func fflushAll() { fflush(nil) }
