import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import ZIPFoundation

/// The suites that start heads with their HTTP servers (and Ray's Python CLI, Chromium): one at a
/// time, so they do not all load the two cores at once beside the rest of the suite.
@Suite(.serialized) enum HeadServices {}

/// A head started by `ray start --head` (dashboard on a free port), stopped by the test.
struct DashboardCluster {
    let cli: RayCLI
    let url: String
    let gcsAddress: String
    var sessionDirectory: String?

    static func start(_ extra: [String] = [], environment: [String: String] = [:]) async throws -> DashboardCluster {
        let cli = try RayCLI()
        let started = try await cli.run(["start", "--head", "--port", "0", "--num-cpus", "2", "--dashboard-port", "0"] + extra,
                                        environment: environment)
        guard started.status == 0,
              let url = line(after: "Dashboard address: ", in: started.output),
              let gcs = line(after: "GCS address: ", in: started.output) else {
            await cli.cleanUp()
            throw TestFailure("ray start --head failed:\n\(started.output)")
        }
        return DashboardCluster(cli: cli, url: url, gcsAddress: gcs,
                                sessionDirectory: line(after: "Session: ", in: started.output))
    }

    static func line(after prefix: String, in text: String) -> String? {
        text.split(separator: "\n").compactMap { line -> String? in
            guard let range = line.range(of: prefix) else { return nil }
            return String(line[range.upperBound...]).trimmingCharacters(in: .whitespaces)
        }.first
    }

    struct Reply {
        let status: Int
        let body: Data
        let contentType: String
        var text: String { String(decoding: body, as: UTF8.self) }
        func json() throws -> Any { try JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]) }
        func object() throws -> [String: Any] {
            guard let object = try json() as? [String: Any] else { throw TestFailure("not a JSON object: \(text)") }
            return object
        }
    }

    func http(_ method: String, _ path: String, body: Data? = nil, headers: [String: String] = [:]) async throws -> Reply {
        var request = URLRequest(url: URL(string: url + path)!, timeoutInterval: 20)
        request.httpMethod = method
        request.httpBody = body
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if body != nil, headers["Content-Type"] == nil { request.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        return Reply(status: http.statusCode, body: data, contentType: http.value(forHTTPHeaderField: "Content-Type") ?? "")
    }

    func submit(_ json: String) async throws -> Reply { try await http("POST", "/api/jobs/", body: Data(json.utf8)) }

    func submitted(_ entrypoint: String, extra: String = "") async throws -> String {
        let reply = try await submit(#"{"entrypoint": "\#(entrypoint)", "runtime_env": {}, "metadata": {}\#(extra)}"#)
        #expect(reply.status == 200, "\(reply.text)")
        let object = try reply.object()
        let id = try #require(object["submission_id"] as? String)
        #expect(object["job_id"] as? String == id)
        return id
    }

    /// Polls the job until `done` holds for its details (or 30 s pass).
    func waitFor(_ id: String, _ done: ([String: Any]) -> Bool) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + .seconds(30)
        var last: [String: Any] = [:]
        while ContinuousClock.now < deadline {
            last = try await http("GET", "/api/jobs/\(id)").object()
            if done(last) { return last }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("job \(id) never got there; last: \(last)")
    }

    func waitForEnd(_ id: String) async throws -> [String: Any] {
        try await waitFor(id) { ["SUCCEEDED", "FAILED", "STOPPED"].contains($0["status"] as? String ?? "") }
    }

    /// The job's log once it has a line `ready=1` (its driver says it set up what the test looks at).
    @discardableResult
    func logsOnceReady(_ id: String) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(60)
        var logs = ""
        while ContinuousClock.now < deadline {
            logs = try await http("GET", "/api/jobs/\(id)/logs").object()["logs"] as? String ?? ""
            if logs.contains("ready=1") { return logs }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("job \(id) never said ready=1; its log: \(logs)")
    }

    func jobCount() async throws -> Int { (try await http("GET", "/api/jobs/").json() as? [Any])?.count ?? -1 }
}

/// The pids a job's shell wrote to `path` (waits up to 10 s for `count` of them).
func readPIDs(_ path: String, count: Int) async throws -> [pid_t] {
    for _ in 0..<1000 {
        let pids = ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { pid_t($0) }
        if pids.count >= count { return pids }
        try await Task.sleep(for: .milliseconds(10))
    }
    throw TestFailure("the job did not write \(count) pids to \(path)")
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension HeadServices {
    @Suite(.serialized, .timeLimit(.minutes(3))) struct JobsAPITests {
        @Test func versionIsWhatRaysClientsCheck() async throws {
            let cluster = try await DashboardCluster.start()
            let version = try await cluster.http("GET", "/api/version").object()
            #expect(version["version"] as? String == "4")
            #expect(version["ray_version"] as? String == "2.60.0")
            #expect((version["session_name"] as? String)?.hasPrefix("session_") == true)
            let health = try await cluster.http("GET", "/api/gcs_healthz")
            #expect(health.status == 200 && health.text == "success")
            // Ray's envelope around `ray status`'s text: this head's node and its CPUs are in it.
            let status = try await cluster.http("GET", "/api/cluster_status")
            #expect(status.status == 200, "\(status.text)")
            let envelope = try status.object()
            #expect(envelope["result"] as? Bool == true && envelope["msg"] as? String == "Got cluster status.")
            let data = envelope["data"] as? [String: Any] ?? [:]
            let text = data["autoscalingStatus"] as? String ?? ""
            #expect(text.contains("Autoscaler status") && text.contains("Active:") && text.contains(" CPU"), "\(text)")
            #expect(data.keys.contains("autoscalingError") && data.keys.contains("clusterStatus"), "\(data)")
            await cluster.cli.cleanUp()
        }

        @Test func aJobRunsSucceedsAndKeepsItsLogs() async throws {
            let cluster = try await DashboardCluster.start()
            do {
                let id = try await cluster.submitted("echo hello; echo $RAY_JOB_SUBMISSION_ID; echo $RAY_ADDRESS; echo $GREETING",
                                                     extra: #", "runtime_env": {"env_vars": {"GREETING": "hi there"}}"#)
                #expect(id.hasPrefix("raysubmit_"))
                let details = try await cluster.waitForEnd(id)
                #expect(details["status"] as? String == "SUCCEEDED")
                #expect(details["message"] as? String == "Job finished successfully.")
                #expect(details["type"] as? String == "SUBMISSION")
                #expect(details["driver_exit_code"] as? Int == 0)
                #expect((details["start_time"] as? Int ?? 0) > 1_600_000_000_000)  // milliseconds
                #expect((details["end_time"] as? Int ?? 0) >= (details["start_time"] as? Int ?? 0))
                let logs = try await cluster.http("GET", "/api/jobs/\(id)/logs").object()["logs"] as? String ?? ""
                #expect(logs == "hello\n\(id)\n\(cluster.gcsAddress)\nhi there\n")
                let listed = try await cluster.http("GET", "/api/jobs/").json() as? [[String: Any]] ?? []
                #expect(listed.contains { $0["submission_id"] as? String == id && $0["status"] as? String == "SUCCEEDED" })
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }

        @Test func aFailingJobReportsItsExitCodeAndLastLogs() async throws {
            let cluster = try await DashboardCluster.start()
            do {
                let id = try await cluster.submitted("echo about to fail; exit 3")
                let details = try await cluster.waitForEnd(id)
                #expect(details["status"] as? String == "FAILED")
                #expect(details["error_type"] as? String == "JOB_ENTRYPOINT_COMMAND_ERROR")
                #expect(details["driver_exit_code"] as? Int == 3)
                #expect(details["message"] as? String
                        == "Job entrypoint command failed with exit code 3, last available logs (truncated to 20,000 chars):\nabout to fail\n")
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }

        @Test func stoppingARunningJobEndsItsWholeProcessGroup() async throws {
            let cluster = try await DashboardCluster.start()
            do {
                // The shell and a child it started in the background: both must go.
                let pids = cluster.cli.tempDir.appendingPathComponent("job.pids").path
                let id = try await cluster.submitted("echo $$ > \(pids); sleep 300 & echo $! >> \(pids); wait")
                _ = try await cluster.waitFor(id) { $0["status"] as? String == "RUNNING" }
                let recorded = try await readPIDs(pids, count: 2)
                #expect(recorded.allSatisfy(processIsAlive))
                let stopped = try await cluster.http("POST", "/api/jobs/\(id)/stop").object()
                #expect(stopped["stopped"] as? Bool == true)
                let details = try await cluster.waitForEnd(id)
                #expect(details["status"] as? String == "STOPPED")
                #expect(details["message"] as? String == "Job was intentionally stopped.")
                for pid in recorded { #expect(!processIsAlive(pid), "\(pid) survived the stop") }
                let again = try await cluster.http("POST", "/api/jobs/\(id)/stop").object()
                #expect(again["stopped"] as? Bool == false)
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }

        @Test func rayStopEndsRunningJobs() async throws {
            let cluster = try await DashboardCluster.start()
            do {
                let pids = cluster.cli.tempDir.appendingPathComponent("job.pids").path
                let id = try await cluster.submitted("echo $$ > \(pids); sleep 300")
                _ = try await cluster.waitFor(id) { $0["status"] as? String == "RUNNING" }
                let pid = try #require(try await readPIDs(pids, count: 1).first)
                #expect(processIsAlive(pid))
                let stopped = try await cluster.cli.run(["stop"])
                #expect(stopped.status == 0, "\(stopped.output)")
                #expect(!processIsAlive(pid), "the job's entrypoint survived ray stop")
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }

        @Test func deleteNeedsAnEndedJobAndThenForgetsIt() async throws {
            let cluster = try await DashboardCluster.start()
            do {
                let id = try await cluster.submitted("sleep 300")
                let refused = try await cluster.http("DELETE", "/api/jobs/\(id)")
                #expect(refused.status == 400)
                #expect(refused.text.contains("non-terminal state"))
                _ = try await cluster.http("POST", "/api/jobs/\(id)/stop")
                _ = try await cluster.waitForEnd(id)
                let deleted = try await cluster.http("DELETE", "/api/jobs/\(id)").object()
                #expect(deleted["deleted"] as? Bool == true)
                let gone = try await cluster.http("GET", "/api/jobs/\(id)")
                #expect(gone.status == 404 && gone.text == "Job \(id) does not exist")
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }

        @Test func badInputGetsAClearErrorAndStoresNothing() async throws {
            let cluster = try await DashboardCluster.start()
            do {
                let cases: [(String, String)] = [
                    ("{not json", "not valid JSON"),
                    (#"{"entrypoint": "echo", "bogus_field": 1}"#, "unexpected keyword argument 'bogus_field'"),
                    (#"{"entrypoint": ["echo"]}"#, "entrypoint must be a string"),
                    (#"{"entrypoint": "echo", "runtime_env": {"conda": "x"}}"#, "not supported"),
                    (#"{"entrypoint": "echo", "entrypoint_num_cpus": "many"}"#, "must be a number"),
                ]
                for (body, message) in cases {
                    let reply = try await cluster.submit(body)
                    #expect(reply.status == 400, "\(body) → \(reply.status)")
                    #expect(reply.text.contains(message), "\(body) → \(reply.text)")
                }
                let oversized = try await cluster.submit(#"{"entrypoint": ""# + String(repeating: "x", count: 17 * 1024 * 1024) + #""}"#)
                #expect(oversized.status == 413)
                #expect(try await cluster.jobCount() == 0)

                for (method, path) in [("GET", "/api/jobs/nope"), ("POST", "/api/jobs/nope/stop"), ("GET", "/api/jobs/nope/logs"),
                                       ("DELETE", "/api/jobs/nope")] {
                    let reply = try await cluster.http(method, path)
                    #expect(reply.status == 404 && reply.text == "Job nope does not exist", "\(method) \(path) → \(reply.status) \(reply.text)")
                }

                let first = try await cluster.submit(#"{"entrypoint": "echo one", "submission_id": "mine"}"#)
                #expect(first.status == 200)
                let duplicate = try await cluster.submit(#"{"entrypoint": "echo two", "submission_id": "mine"}"#)
                #expect(duplicate.status == 400)
                #expect(duplicate.text.contains("Job with submission_id mine already exists"))
                let kept = try await cluster.waitForEnd("mine")
                #expect(kept["entrypoint"] as? String == "echo one")
                #expect(try await cluster.jobCount() == 1)
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }
    }
}

extension HeadServices {
    @Suite(.serialized, .timeLimit(.minutes(3))) struct JobPackagesTests {
        static func zip(_ files: [String: String]) throws -> Data {
            let archive = try Archive(data: Data(), accessMode: .create)
            for (path, contents) in files.sorted(by: { $0.key < $1.key }) {
                let data = Data(contents.utf8)
                try archive.addEntry(with: path, type: .file, uncompressedSize: Int64(data.count), permissions: 0o755,
                                     provider: { position, size in data.subdata(in: Int(position)..<Int(position) + size) })
            }
            return try #require(archive.data)
        }

        static func zipBinary(_ name: String, _ bytes: Data) throws -> Data {
            let archive = try Archive(data: Data(), accessMode: .create)
            try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(bytes.count), permissions: 0o755,
                                 compressionMethod: .deflate,
                                 provider: { position, size in bytes.subdata(in: Int(position)..<Int(position) + size) })
            return try #require(archive.data)
        }

        @Test func packagesAreCheckedBeforeTheyAreKeptAndAJobRunsFromOne() async throws {
            let cluster = try await DashboardCluster.start()
            do {
                let path = "/api/packages/gcs/_ray_pkg_test1.zip"
                #expect(try await cluster.http("GET", path).status == 404)
                let garbage = try await cluster.http("PUT", path, body: Data("not a zip".utf8), headers: ["Content-Type": "application/octet-stream"])
                #expect(garbage.status == 400 && garbage.text.contains("not a zip archive"), "\(garbage.text)")
                let escaping = try await cluster.http("PUT", path, body: Self.zip(["../outside.sh": "echo no"]),
                                                      headers: ["Content-Type": "application/octet-stream"])
                #expect(escaping.status == 400 && escaping.text.contains("outside its working directory"), "\(escaping.text)")
                let badName = try await cluster.http("PUT", "/api/packages/s3/x.zip", body: Self.zip(["a": "b"]),
                                                     headers: ["Content-Type": "application/octet-stream"])
                #expect(badName.status == 400)
                let huge = try await cluster.http("PUT", path, body: Data(count: 100 * 1024 * 1024 + 1),
                                                  headers: ["Content-Type": "application/octet-stream"])
                #expect(huge.status == 413, "\(huge.status) \(huge.text)")
                try halfUpload(cluster, path: path)
                #expect(try await cluster.http("GET", path).status == 404)  // none of those was kept

                let good = try await cluster.http("PUT", path, body: Self.zip(["tool.sh": "#!/bin/sh\necho tool ran in $(basename $PWD)\n"]),
                                                  headers: ["Content-Type": "application/octet-stream"])
                #expect(good.status == 200, "\(good.text)")
                #expect(try await cluster.http("GET", path).status == 200)
                let id = try await cluster.submitted("./tool.sh", extra: #", "runtime_env": {"working_dir": "gcs://_ray_pkg_test1.zip"}"#)
                let details = try await cluster.waitForEnd(id)
                #expect(details["status"] as? String == "SUCCEEDED", "\(details)")
                let logs = try await cluster.http("GET", "/api/jobs/\(id)/logs").object()["logs"] as? String
                #expect(logs == "tool ran in _ray_pkg_test1\n")

                let missing = try await cluster.submitted("true", extra: #", "runtime_env": {"working_dir": "gcs://_ray_pkg_absent.zip"}"#)
                let failed = try await cluster.waitForEnd(missing)
                #expect(failed["status"] as? String == "FAILED")
                #expect(failed["error_type"] as? String == "RUNTIME_ENV_SETUP_FAILURE")
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }

        /// A PUT whose connection drops after a few of the bytes it announced.
        func halfUpload(_ cluster: DashboardCluster, path: String) throws {
            let port = UInt16(cluster.url.split(separator: ":").last!)!
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            #expect(connected == 0)
            let head = "PUT \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\nContent-Type: application/octet-stream\r\n\r\nPK\u{03}\u{04}partial"
            _ = head.withCString { send(fd, $0, strlen($0), 0) }
            usleep(100_000)
        }

        @Test func jobsOutliveARestartOfTheHTTPServer() async throws {
            let cluster = try await DashboardCluster.start()
            var restarted: Process?
            do {
                let id = try await cluster.submitted("sleep 3; echo finished")
                _ = try await cluster.waitFor(id) { $0["status"] as? String == "RUNNING" }
                let session = try #require(cluster.sessionDirectory)
                let processes = try String(contentsOfFile: session + "/processes", encoding: .utf8)
                let dashboard = try #require(processes.split(separator: "\n").first { $0.hasPrefix("dashboard ") }
                    .flatMap { pid_t($0.split(separator: " ")[1]) })
                kill(dashboard, SIGKILL)
                let portFile = session + "/dashboard-restarted.port"
                let process = Process()
                process.executableURL = RayCLI.executable
                process.arguments = ["dashboard", "--gcs-address", cluster.gcsAddress, "--port", "0", "--session-dir", session,
                                     "--port-file", portFile]
                try process.run()
                restarted = process
                var port: String?
                for _ in 0..<500 where port == nil {
                    port = try? String(contentsOfFile: portFile, encoding: .utf8)
                    try await Task.sleep(for: .milliseconds(10))
                }
                let again = DashboardCluster(cli: cluster.cli, url: "http://127.0.0.1:\(try #require(port))", gcsAddress: cluster.gcsAddress)
                let details = try await again.waitForEnd(id)
                #expect(details["status"] as? String == "SUCCEEDED")
                #expect(try await again.http("GET", "/api/jobs/\(id)/logs").object()["logs"] as? String == "finished\n")
            } catch { Issue.record(error) }
            restarted?.terminate()
            restarted?.waitUntilExit()
            await cluster.cli.cleanUp()
        }
    }
}

extension HeadServices {
    @Suite(.serialized, .timeLimit(.minutes(3))) struct WorkingDirectoryAcrossNodesTests {
        /// How a user's program reaches a cluster: a Swift driver binary shipped in the working
        /// directory runs as the job's entrypoint on the head, and its tasks on a second node run from
        /// that node's own copy of the package, fetched from the GCS.
        @Test func aDriverShippedInTheWorkingDirectoryRunsItsTasksOnAnotherNodeFromThatNodesCopy() async throws {
            let cluster = try await DashboardCluster.start()
            let second = try RayCLI()
            do {
                let joined = try await second.run(["start", "--address", cluster.gcsAddress, "--num-cpus", "2",
                                                   "--resources", #"{"far": 4}"#])
                #expect(joined.status == 0, "\(joined.output)")
                let app = RayCLI.executable.deletingLastPathComponent().appendingPathComponent("ray-integration-app")
                let bytes = try Data(contentsOf: app)
                let package = try JobPackagesTests.zipBinary("ray-integration-app", bytes)
                let path = "/api/packages/gcs/_ray_pkg_driver1.zip"
                let put = try await cluster.http("PUT", path, body: package, headers: ["Content-Type": "application/octet-stream"])
                #expect(put.status == 200, "\(put.text)")
                let id = try await cluster.submitted("./ray-integration-app exe-paths",
                                                     extra: #", "runtime_env": {"working_dir": "gcs://_ray_pkg_driver1.zip"}"#)
                let details = try await cluster.waitForEnd(id)
                let logs = try await cluster.http("GET", "/api/jobs/\(id)/logs").object()["logs"] as? String ?? ""
                #expect(details["status"] as? String == "SUCCEEDED", "\(details)\n\(logs)")
                let headSession = try #require(cluster.sessionDirectory)
                let driver = try #require(logs.split(separator: "\n").first { $0.hasPrefix("driver_exe=") })
                #expect(driver == "driver_exe=\(headSession)/runtime_resources/working_dir_files/_ray_pkg_driver1/ray-integration-app", "\(logs)")
                let far = logs.split(separator: "\n").filter { $0.hasPrefix("far_task=") }
                #expect(far.count == 1, "\(logs)")  // every far task on the one node that has `far`
                let exe = String(far.first?.split(separator: " ").last ?? "")
                #expect(exe.hasPrefix(second.tempDir.path) && exe.hasSuffix("/runtime_resources/working_dir_files/_ray_pkg_driver1/ray-integration-app"),
                        "the second node's workers ran \(exe), not its own copy of the package")
            } catch { Issue.record(error) }
            await second.cleanUp()
            await cluster.cli.cleanUp()
        }
    }
}

extension HeadServices {
    @Suite(.serialized, .timeLimit(.minutes(2))) struct WebUITests {
        /// Debian's chromium, headless, renders the page and runs its scripts; the DOM it dumps must
        /// show the node and a job submitted in the test with its status.
        @Test func thePageRenderedInChromiumShowsTheClusterAndAJobWithItsStatus() async throws {
            let cluster = try await DashboardCluster.start()
            do {
                let id = try await cluster.submitted("echo from-the-ui-test")
                _ = try await cluster.waitForEnd(id)
                let chromium = "/usr/bin/chromium"
                #expect(FileManager.default.isExecutableFile(atPath: chromium), "make deps installs Debian's chromium")
                let process = Process()
                process.executableURL = URL(fileURLWithPath: chromium)
                let profile = cluster.cli.tempDir.appendingPathComponent("chromium-profile").path
                process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile)",
                                     "--virtual-time-budget=5000", "--dump-dom", cluster.url + "/"]
                let output = Pipe()
                process.standardOutput = output
                process.standardError = FileHandle.nullDevice
                try process.run()
                let reader = Task.detached { output.fileHandleForReading.readDataToEndOfFile() }
                let deadline = ContinuousClock.now + .seconds(60)
                while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
                if process.isRunning { process.terminate() }
                let dom = String(decoding: await reader.value, as: UTF8.self)
                #expect(dom.contains("<td>\(id)</td><td><span class=\"SUCCEEDED\">SUCCEEDED</span></td><td>echo from-the-ui-test</td>"),
                        "the rendered page lacks the job row: \(dom.prefix(4000))")
                #expect(dom.contains("1 alive node(s) of 1, 2 CPUs"), "\(dom.prefix(4000))")
                #expect(dom.contains("<span class=\"ALIVE\">ALIVE</span>"))
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }
    }
}

extension HeadServices {
    /// Our own `ray job …`, as Ray's CLI is used.
    @Suite(.serialized, .timeLimit(.minutes(2))) struct OurJobCLITests {
        @Test func submitFollowsLogsShipsAWorkingDirectoryAndReportsFailureByExitCode() async throws {
            let cluster = try await DashboardCluster.start()
            let directory = cluster.cli.tempDir.appendingPathComponent("wd")
            do {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                let script = directory.appendingPathComponent("run.sh")
                try Data("#!/bin/sh\necho \"shipped: $(cat note.txt) $GREETING\"\n".utf8).write(to: script)
                try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
                try Data("a note".utf8).write(to: directory.appendingPathComponent("note.txt"))
                // No --address: the cluster `ray start` started, its dashboard found through the GCS.
                let submit = try await cluster.cli.run(["job", "submit", "--working-dir", directory.path, "--submission-id", "ours-1",
                                                        "--runtime-env-json", #"{"env_vars": {"GREETING": "hi"}}"#, "--", "./run.sh"])
                #expect(submit.status == 0, "\(submit.output)")
                #expect(submit.output.contains("Uploading package gcs://_ray_pkg_"), "\(submit.output)")
                #expect(submit.output.contains("shipped: a note hi\n"), "\(submit.output)")
                #expect(submit.output.contains("Job 'ours-1' succeeded"), "\(submit.output)")
                let again = try await cluster.cli.run(["job", "submit", "--working-dir", directory.path, "--no-wait", "--", "true"])
                #expect(again.output.contains("already exists, skipping upload"), "\(again.output)")  // same contents, same package

                let address = ["--address", cluster.url]
                let failing = try await cluster.cli.run(["job", "submit"] + address + ["--", "sh", "-c", "echo bad; exit 3"])
                #expect(failing.status == 1, "\(failing.output)")
                #expect(failing.output.contains("failed with exit code 3"), "\(failing.output)")

                let status = try await cluster.cli.run(["job", "status"] + address + ["ours-1"])
                #expect(status.status == 0 && status.output.contains("Job 'ours-1' succeeded"), "\(status.output)")
                let logs = try await cluster.cli.run(["job", "logs"] + address + ["ours-1"])
                #expect(logs.output.contains("shipped: a note hi\n"), "\(logs.output)")
                let list = try await cluster.cli.run(["job", "list"] + address)
                #expect(list.output.contains("ours-1") && list.output.contains("SUCCEEDED"), "\(list.output)")

                _ = try await cluster.cli.run(["job", "submit"] + address + ["--no-wait", "--submission-id", "ours-long", "--", "sleep", "300"])
                _ = try await cluster.waitFor("ours-long") { $0["status"] as? String == "RUNNING" }
                let stop = try await cluster.cli.run(["job", "stop"] + address + ["ours-long"])
                #expect(stop.status == 0 && stop.output.contains("Job 'ours-long' was stopped"), "\(stop.output)")
                let delete = try await cluster.cli.run(["job", "delete"] + address + ["ours-long"])
                #expect(delete.status == 0, "\(delete.output)")
                let unknown = try await cluster.cli.run(["job", "status"] + address + ["no-such-job"])
                #expect(unknown.status != 0 && unknown.output.contains("Job no-such-job does not exist"), "\(unknown.output)")
                let nowhere = try await cluster.cli.run(["job", "list", "--address", "http://127.0.0.1:1"])
                #expect(nowhere.status != 0 && nowhere.output.contains("no Jobs API answers at http://127.0.0.1:1"), "\(nowhere.output)")
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }
    }
}

extension HeadServices {
    @Suite(.serialized, .timeLimit(.minutes(2))) struct EmbeddedDashboardTests {
        /// `Ray.start()` with `includeDashboard`: the embedded cluster gets the same HTTP server, run
        /// by the `ray` command, and loses it when the program ends.
        @Test func anEmbeddedClusterServesTheDashboardUntilTheProgramEnds() async throws {
            let temp = FileManager.default.temporaryDirectory.appendingPathComponent("swift-ray-embedded-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: temp) }
            let done = temp.appendingPathComponent("done").path
            let app = Process()
            app.executableURL = RayCLI.executable.deletingLastPathComponent().appendingPathComponent("ray-integration-app")
            app.arguments = ["embedded-dashboard", done]
            var environment = ProcessInfo.processInfo.environment
            environment["RAY_ADDRESS"] = nil
            environment["APP_DASHBOARD"] = "1"
            environment["APP_NUM_CPUS"] = "2"
            environment["RAY_EXECUTABLE"] = RayCLI.executable.path
            environment["RAY_TMPDIR"] = temp.path
            app.environment = environment
            let output = Pipe()
            app.standardOutput = output
            try app.run()
            defer { if app.isRunning { kill(app.processIdentifier, SIGKILL) } }
            var text = ""
            let reader = output.fileHandleForReading
            while !text.contains("sum=30\n") {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            let url = try #require(DashboardCluster.line(after: "dashboard=", in: text), "\(text)")
            #expect(url.hasPrefix("http://127.0.0.1:"), "\(text)")
            let dashboard = DashboardCluster(cli: try RayCLI(), url: url, gcsAddress: "")
            defer { try? FileManager.default.removeItem(at: dashboard.cli.tempDir) }
            #expect(try await dashboard.http("GET", "/api/version").object()["ray_version"] as? String == "2.60.0")
            let nodes = try await dashboard.http("GET", "/api/v0/nodes").object()
            #expect(((nodes["data"] as? [String: Any])?["result"] as? [String: Any])?["total"] as? Int == 1, "\(nodes)")
            FileManager.default.createFile(atPath: done, contents: nil)
            let deadline = ContinuousClock.now + .seconds(30)
            while app.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            #expect(!app.isRunning && app.terminationStatus == 0)
            // Gone with the program.
            await #expect(throws: (any Error).self) { _ = try await dashboard.http("GET", "/api/version") }
        }
    }
}
