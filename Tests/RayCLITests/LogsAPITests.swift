import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// Reads a streamed response until `marker` has appeared twice after the first chunk (or 20 s).
final class StreamReader: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    private let lock = NSLock()
    private var received = Data()
    private var status = 0

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        lock.withLock { status = (response as? HTTPURLResponse)?.statusCode ?? 0 }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        lock.withLock { received.append(data) }
    }

    var text: String { lock.withLock { String(decoding: received, as: UTF8.self) } }
    var code: Int { lock.withLock { status } }
}

extension HeadServices {
    /// Ray's log API and `ray logs`: a node's files by category, a file's last lines, the logs of
    /// an actor, a task, a worker pid and a job, a followed file, and clear errors for bad requests.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct LogsAPITests {
        func result(_ reply: DashboardCluster.Reply) throws -> [String: Any] {
            try #require(try reply.object()["data"] as? [String: Any])["result"] as? [String: Any] ?? [:]
        }

        @Test func logsAreListedAndReadByFileActorTaskPidAndJobAndFollowed() async throws {
            let cluster = try await DashboardCluster.start()
            do {
                let app = RayCLI.executable.deletingLastPathComponent().appendingPathComponent("ray-integration-app").path
                let stopFile = cluster.cli.tempDir.appendingPathComponent("stop-ticking").path
                let id = try await cluster.submitted("\(app) log-sources \(stopFile)")
                let logs = try await cluster.logsOnceReady(id)
                let actor = try #require(DashboardCluster.line(after: "actor=", in: logs), "\(logs)")
                let task = try #require(DashboardCluster.line(after: "task=", in: logs))
                let actorPID = try #require(DashboardCluster.line(after: "actor_pid=", in: logs))
                let nodes = try await cluster.http("GET", "/api/v0/nodes").object()
                let node = try #require((((nodes["data"] as? [String: Any])?["result"] as? [String: Any])?["result"] as? [[String: Any]])?.first?["node_id"] as? String)

                // The listing, by Ray's categories.
                let listed = try result(try await cluster.http("GET", "/api/v0/logs?node_id=\(node)"))
                #expect((listed["raylet"] as? [String])?.contains("raylet.err") == true, "\(listed)")
                #expect((listed["gcs_server"] as? [String])?.contains("gcs_server.out") == true)
                #expect((listed["worker_out"] as? [String])?.isEmpty == false)
                let globbed = try result(try await cluster.http("GET", "/api/v0/logs?node_ip=127.0.0.1&glob=gcs_server.*"))
                #expect(globbed.keys.sorted() == ["gcs_server"] && (globbed["gcs_server"] as? [String])?.count == 2, "\(globbed)")

                // A file's last lines are the file's own last lines.
                let session = try #require(cluster.sessionDirectory)
                let raylet = try String(contentsOfFile: "\(session)/logs/raylet.err", encoding: .utf8)
                let lastLine = try #require(raylet.split(separator: "\n").last.map(String.init))
                let tail = try await cluster.http("GET", "/api/v0/logs/file?node_id=\(node)&filename=raylet.err&lines=1")
                #expect(tail.status == 200 && tail.text == lastLine + "\n", "\(tail.text)")
                let whole = try await cluster.http("GET", "/api/v0/logs/file?node_id=\(node)&filename=raylet.err&lines=-1")
                // The whole file as read before (it only grows).
                #expect(whole.status == 200 && whole.text.hasPrefix(raylet), "\(whole.text.count) of \(raylet.count) bytes")

                // By what wrote them.
                let byActor = try await cluster.http("GET", "/api/v0/logs/file?actor_id=\(actor)")
                #expect(byActor.status == 200 && byActor.text.contains("actor says: hello from an actor"), "\(byActor.status) \(byActor.text)")
                let byPID = try await cluster.http("GET", "/api/v0/logs/file?node_id=\(node)&pid=\(actorPID)")
                #expect(byPID.text == byActor.text)
                // Task events reach the GCS in batches: the task may take a moment to be known.
                var byTask = try await cluster.http("GET", "/api/v0/logs/file?task_id=\(task)")
                let known = ContinuousClock.now + .seconds(15)
                while byTask.status == 404 && ContinuousClock.now < known {
                    try await Task.sleep(for: .milliseconds(200))
                    byTask = try await cluster.http("GET", "/api/v0/logs/file?task_id=\(task)")
                }
                #expect(byTask.status == 200 && byTask.text.contains("worker says: hello from a task"), "\(byTask.status) \(byTask.text)")
                let byJob = try await cluster.http("GET", "/api/v0/logs/file?submission_id=\(id)&lines=-1")
                #expect(byJob.status == 200 && byJob.text.contains("actor_said=") && byJob.text.contains("tick=0"), "\(byJob.text)")

                // Followed: lines keep arriving after the first chunk.
                let reader = StreamReader()
                let session2 = URLSession(configuration: .default, delegate: reader, delegateQueue: nil)
                let stream = session2.dataTask(with: URL(string: "\(cluster.url)/api/v0/logs/stream?submission_id=\(id)&lines=1&interval=0.05")!)
                stream.resume()
                let followDeadline = ContinuousClock.now + .seconds(20)
                var ticks: [String] = []
                while ContinuousClock.now < followDeadline {
                    ticks = reader.text.split(separator: "\n").filter { $0.hasPrefix("tick=") }.map(String.init)
                    if ticks.count >= 5 { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                stream.cancel()
                session2.invalidateAndCancel()
                #expect(reader.code == 200 && ticks.count >= 5, "\(reader.text)")
                let numbers = ticks.compactMap { Int($0.dropFirst("tick=".count)) }
                #expect(numbers == Array(numbers[0]..<(numbers[0] + numbers.count)), "\(ticks)")

                // Our CLI, as Ray's prints.
                let list = try await cluster.cli.run(["logs", "--address", cluster.url])
                #expect(list.status == 0 && list.output.contains("---\n") && list.output.contains("raylet:\n- raylet.err"), "\(list.output)")
                let one = try await cluster.cli.run(["logs", "raylet.err", "--tail", "1", "--address", cluster.url])
                #expect(one.status == 0 && one.output.contains("--- Log has been truncated to last 1 lines.") && one.output.hasSuffix(lastLine + "\n"),
                        "\(one.output)")
                let job = try await cluster.cli.run(["logs", "job", "--id", id, "--address", cluster.url])
                #expect(job.status == 0 && job.output.contains("actor_said="), "\(job.output)")
                let actorLog = try await cluster.cli.run(["logs", "actor", "--id", actor, "--address", cluster.url])
                #expect(actorLog.output.contains("actor says: hello from an actor"), "\(actorLog.output)")

                // Bad requests: a clear 4xx, nothing read.
                for (query, status, words) in [
                    ("/api/v0/logs", 400, "Both node id and node ip are not provided"),
                    ("/api/v0/logs?node_id=ffff", 404, "is not alive or does not exist"),
                    ("/api/v0/logs?node_ip=10.9.9.9", 404, "Cannot find matching node_id"),
                    ("/api/v0/logs/file?node_id=\(node)&filename=../../etc/passwd", 400, "relative to the node's log directory"),
                    ("/api/v0/logs/file?node_id=\(node)&filename=nope.log", 404, "does not exist on node"),
                    ("/api/v0/logs/file?node_id=\(node)&filename=raylet.err&lines=many", 400, "lines must be an integer"),
                    ("/api/v0/logs/file?actor_id=\(actor)&suffix=log", 400, "Suffix log is not supported"),
                    ("/api/v0/logs/file?pid=1", 400, "Node id needs to be specified"),
                    ("/api/v0/logs/file?submission_id=raysubmit_missing", 404, "does not exist"),
                    ("/api/v0/logs/file", 400, "give one of filename"),
                    ("/api/v0/logs/tail", 404, "Unknown media type"),
                ] {
                    let reply = try await cluster.http("GET", query)
                    #expect(reply.status == status && reply.text.contains(words), "\(query) → \(reply.status) \(reply.text)")
                }
                FileManager.default.createFile(atPath: stopFile, contents: nil)
                #expect(try await cluster.waitForEnd(id)["status"] as? String == "SUCCEEDED")
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }
    }
}
