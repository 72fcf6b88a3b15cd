import Foundation
import RayProtos
import RayRPC
import RayServices
import Testing

/// Ray 2.60's own Python CLI (`pip install "ray[default]"`, into the venv `make ray-venv` makes)
/// against our head: what a Ray user types must work unchanged.
struct RayPython {
    /// `make test` passes it; the default is where `make ray-venv` puts it.
    static var venv: String {
        ProcessInfo.processInfo.environment["SWIFT_RAY_PYTHON_VENV"]
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/swift-ray/ray-2.60.0-venv").path
    }

    static var ray: String { "\(venv)/bin/ray" }

    /// A node's /metrics, fetched and parsed by Prometheus's own Python client (prometheus_client,
    /// which ray[default] installs): [(sample name, labels, value)].
    static func scrape(_ target: String) async throws -> [(name: String, labels: [String: String], value: Double)] {
        let script = """
        import json, sys, urllib.request
        from prometheus_client.parser import text_string_to_metric_families
        text = urllib.request.urlopen("http://" + sys.argv[1] + "/metrics", timeout=20).read().decode()
        print(json.dumps([[s.name, s.labels, s.value] for f in text_string_to_metric_families(text) for s in f.samples]))
        """
        let result = try await run(["-c", script, target], executable: "\(venv)/bin/python")
        guard result.status == 0, let rows = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [[Any]] else {
            throw TestFailure("scraping \(target) failed: \(result.output)")
        }
        return rows.map { ($0[0] as? String ?? "", $0[1] as? [String: String] ?? [:], ($0[2] as? NSNumber)?.doubleValue ?? .nan) }
    }

    static func run(_ arguments: [String], directory: String? = nil, timeout: Duration = .seconds(60),
                    environment extra: [String: String] = [:], executable: String? = nil)
        async throws -> (status: Int32, output: String)
    {
        let program = executable ?? ray
        guard FileManager.default.isExecutableFile(atPath: program) else {
            throw TestFailure("\(program) is not there: run `make ray-venv` (make test does)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["RAY_AUTH_MODE"] = "disabled"
        environment["RAY_USAGE_STATS_ENABLED"] = "0"
        environment["RAY_ADDRESS"] = nil  // it would override --address
        environment["RAY_API_SERVER_ADDRESS"] = nil
        environment.merge(extra) { _, new in new }
        process.environment = environment
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        // Read while it runs, so a full pipe never blocks it.
        let reader = Task.detached { output.fileHandleForReading.readDataToEndOfFile() }
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                process.terminate()
                Issue.record("`ray \(arguments.joined(separator: " "))` did not finish within \(timeout)")
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: await reader.value, as: UTF8.self))
    }
}

extension HeadServices {
    @Suite(.serialized, .timeLimit(.minutes(4))) struct RayPythonCLITests {
        @Test func raysJobCLISubmitsFollowsStatusLogsListAndStops() async throws {
            let cluster = try await DashboardCluster.start()
            do {
                let address = ["--address", cluster.url]
                let submit = try await RayPython.run(["job", "submit"] + address + ["--submission-id", "py-hello", "--", "echo", "hello"])
                #expect(submit.status == 0, "\(submit.output)")
                #expect(submit.output.contains("hello"), "\(submit.output)")
                #expect(submit.output.contains("Job 'py-hello' succeeded"), "\(submit.output)")

                let status = try await RayPython.run(["job", "status"] + address + ["py-hello"])
                #expect(status.status == 0 && status.output.contains("Job 'py-hello' succeeded"), "\(status.output)")
                let logs = try await RayPython.run(["job", "logs"] + address + ["py-hello"])
                #expect(logs.status == 0 && logs.output.contains("hello"), "\(logs.output)")
                let list = try await RayPython.run(["job", "list"] + address)
                #expect(list.status == 0 && list.output.contains("py-hello"), "\(list.output)")

                let failing = try await RayPython.run(["job", "submit"] + address + ["--", "sh", "-c", "exit 4"])
                #expect(failing.status != 0, "\(failing.output)")
                #expect(failing.output.contains("failed"), "\(failing.output)")

                let long = try await RayPython.run(["job", "submit"] + address + ["--no-wait", "--submission-id", "py-long", "--", "sleep", "300"])
                #expect(long.status == 0, "\(long.output)")
                _ = try await cluster.waitFor("py-long") { $0["status"] as? String == "RUNNING" }
                let stop = try await RayPython.run(["job", "stop"] + address + ["py-long"])
                #expect(stop.status == 0, "\(stop.output)")
                let stopped = try await cluster.waitForEnd("py-long")
                #expect(stopped["status"] as? String == "STOPPED")
                let delete = try await RayPython.run(["job", "delete"] + address + ["py-long"])
                #expect(delete.status == 0, "\(delete.output)")
                #expect(try await cluster.http("GET", "/api/jobs/py-long").status == 404)
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }

        @Test func aWorkingDirectoryUploadedByRaysCLIRunsFromTheJobsFolder() async throws {
            let cluster = try await DashboardCluster.start()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swift-ray-wd-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: directory) }
            do {
                try FileManager.default.createDirectory(at: directory.appendingPathComponent("data"), withIntermediateDirectories: true)
                let script = directory.appendingPathComponent("run.sh")
                try Data("#!/bin/sh\necho \"from the package: $(cat data/words.txt)\"\n".utf8).write(to: script)
                try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
                try Data("shipped words".utf8).write(to: directory.appendingPathComponent("data/words.txt"))
                let submit = try await RayPython.run(["job", "submit", "--address", cluster.url, "--submission-id", "py-wd",
                                                      "--working-dir", directory.path, "--", "./run.sh"])
                #expect(submit.status == 0, "\(submit.output)")
                #expect(submit.output.contains("from the package: shipped words"), "\(submit.output)")
                let details = try await cluster.http("GET", "/api/jobs/py-wd").object()
                let uri = (details["runtime_env"] as? [String: Any])?["working_dir"] as? String ?? ""
                #expect(uri.hasPrefix("gcs://_ray_pkg_") && uri.hasSuffix(".zip"), "\(details)")
                let name = String(uri.dropFirst("gcs://".count))
                #expect(try await cluster.http("GET", "/api/packages/gcs/\(name)").status == 200)
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }

        @Test func raysStateCLIListsOurNodesActorsJobsPlacementGroupsAndObjects() async throws {
            let cluster = try await DashboardCluster.start()
            do {
                let app = RayCLI.executable.deletingLastPathComponent().appendingPathComponent("ray-integration-app").path
                let id = try await cluster.submitted("\(app) state-hold")
                try await cluster.logsOnceReady(id)
                // The Swift driver in the entrypoint joined as this job: its job ID is shown.
                let details = try await cluster.http("GET", "/api/jobs/\(id)").object()
                let jobID = try #require(details["job_id"] as? String, "\(details)")
                #expect((details["driver_info"] as? [String: Any])?["id"] as? String == jobID)

                let address = ["--address", cluster.url]
                let actors = try await RayPython.run(["list", "actors"] + address)
                #expect(actors.status == 0, "\(actors.output)")
                #expect(actors.output.contains("Counter") && actors.output.contains("state-counter") && actors.output.contains("ALIVE"),
                        "\(actors.output)")
                let nodes = try await RayPython.run(["list", "nodes"] + address)
                #expect(nodes.output.contains("Total: 1") && nodes.output.contains("ALIVE"), "\(nodes.output)")
                let groups = try await RayPython.run(["list", "placement-groups"] + address)
                #expect(groups.output.contains("state-group") && groups.output.contains("CREATED"), "\(groups.output)")
                let jobs = try await RayPython.run(["list", "jobs"] + address)
                #expect(jobs.output.contains(id) && jobs.output.contains("RUNNING"), "\(jobs.output)")
                let dead = try await RayPython.run(["list", "actors", "--filter", "state=DEAD"] + address)
                #expect(dead.status == 0 && dead.output.contains("No resource in the cluster"), "\(dead.output)")

                for (query, message) in [("limit=0", "limit must be a positive integer"),
                                         ("limit=20000", "exceeds the supported limit 10000"),
                                         ("filter_keys=bogus&filter_predicates=%3D&filter_values=1", "filter column bogus is not supported"),
                                         ("filter_keys=state&filter_predicates=%3E&filter_values=1", "Unsupported filter predicate"),
                                         ("filter_keys=state", "must come in threes")] {
                    let reply = try await cluster.http("GET", "/api/v0/actors?\(query)")
                    let object = try reply.object()
                    #expect(reply.status == 400 && object["result"] as? Bool == false, "\(query) → \(reply.status)")
                    #expect((object["msg"] as? String)?.contains(message) == true, "\(query) → \(reply.text)")
                }
                let one = try await cluster.http("GET", "/api/v0/actors?limit=1&detail=true").object()
                let result = try #require((one["data"] as? [String: Any])?["result"] as? [String: Any])
                #expect(result["total"] as? Int == 1 && (result["result"] as? [Any])?.count == 1, "\(result)")
                let row = try #require((result["result"] as? [[String: Any]])?.first)
                #expect(row["job_id"] as? String == jobID && row["is_detached"] as? Bool == false, "\(row)")

                // Objects: the driver's two puts and a task's return, as each process references them.
                let logs = try await cluster.http("GET", "/api/jobs/\(id)/logs").object()["logs"] as? String ?? ""
                let held = try #require(DashboardCluster.line(after: "objects=", in: logs), "\(logs)").split(separator: ",").map(String.init)
                #expect(held.count == 3)
                let listed = try await cluster.http("GET", "/api/v0/objects?limit=10000").object()
                let objectRows = ((listed["data"] as? [String: Any])?["result"] as? [String: Any])?["result"] as? [[String: Any]] ?? []
                let driverRows = Dictionary(objectRows.filter { $0["type"] as? String == "DRIVER" }.map { ($0["object_id"] as? String ?? "", $0) }) { a, _ in a }
                let big = try #require(driverRows[held[0]], "\(objectRows)"), small = try #require(driverRows[held[1]]),
                    returned = try #require(driverRows[held[2]])
                #expect(big["object_size"] as? Int ?? 0 >= 2 << 20 && big["task_status"] as? String == "NIL", "\(big)")
                #expect(small["reference_type"] as? String == "LOCAL_REFERENCE" && small["call_site"] as? String == "disabled")
                #expect(returned["task_status"] as? String == "FINISHED" && (returned["object_size"] as? Int ?? 0) > 0, "\(returned)")
                #expect(Set(big.keys) == ["object_id", "object_size", "task_status", "attempt_number", "reference_type", "call_site", "type", "pid", "ip"])
                let pythonObjects = try await RayPython.run(["list", "objects", "--filter", "type=DRIVER"] + address)
                #expect(pythonObjects.status == 0 && pythonObjects.output.contains(held[0]) && pythonObjects.output.contains("LOCAL_REFERENCE"),
                        "\(pythonObjects.output)")
                let ourObjects = try await cluster.cli.run(["list", "objects", "--address", cluster.url])
                #expect(ourObjects.status == 0 && ourObjects.output.contains(held[2]) && ourObjects.output.contains("FINISHED"), "\(ourObjects.output)")
                for summary in [try await RayPython.run(["summary", "objects"] + address), try await cluster.cli.run(["summary", "objects", "--address", cluster.url])] {
                    #expect(summary.status == 0 && summary.output.contains("Object Summary") && summary.output.contains("disabled"), "\(summary.output)")
                }
                let summarized = try await cluster.http("GET", "/api/v0/objects/summarize").object()
                let cluster0 = (((summarized["data"] as? [String: Any])?["result"] as? [String: Any])?["result"] as? [String: Any])?["node_id_to_summary"] as? [String: Any]
                let totals = try #require(cluster0?["cluster"] as? [String: Any], "\(summarized)")
                #expect(totals["total_objects"] as? Int == objectRows.count && totals["callsite_enabled"] as? Bool == false, "\(totals)")
                #expect(try await cluster.http("GET", "/api/v0/objects?timeout=soon").status == 400)
                #expect(try await cluster.http("GET", "/api/v0/objects?filter_keys=owner&filter_predicates=%3D&filter_values=1").status == 400)
                _ = try await cluster.http("POST", "/api/jobs/\(id)/stop")
                #expect(try await cluster.waitForEnd(id)["status"] as? String == "STOPPED")
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }

        @Test func tokenAuthAsRay260HasItWithRaysCLI() async throws {
            let token = "tok-\(UUID().uuidString)"
            let cluster = try await DashboardCluster.start(environment: ["RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token])
            do {
                let missing = try await cluster.http("GET", "/api/version")
                #expect(missing.status == 401 && missing.text == "Unauthorized: Missing authentication token")
                let wrong = try await cluster.http("GET", "/api/jobs/", headers: ["Authorization": "Bearer nope"])
                #expect(wrong.status == 403 && wrong.text == "Forbidden: Invalid authentication token")
                for headers in [["Authorization": "Bearer \(token)"], ["X-Ray-Authorization": "Bearer \(token)"],
                                ["Cookie": "theme=dark; ray-authentication-token=\(token)"]] {
                    #expect(try await cluster.http("GET", "/api/version", headers: headers).status == 200, "\(headers)")
                }
                #expect(try await cluster.http("GET", "/api/gcs_healthz").status == 200)  // public, as in Ray
                let mode = try await cluster.http("GET", "/api/authentication_mode").object()
                #expect(mode["authentication_mode"] as? String == "token")
                let browser = try await cluster.http("POST", "/api/jobs/", body: Data(#"{"entrypoint": "true"}"#.utf8),
                                                     headers: ["Authorization": "Bearer \(token)", "User-Agent": "Mozilla/5.0"])
                #expect(browser.status == 405 && browser.text.contains("method not allowed for browser traffic"))

                let address = ["--address", cluster.url]
                let refused = try await RayPython.run(["job", "submit"] + address + ["--", "echo", "nope"])
                #expect(refused.status != 0, "\(refused.output)")
                let submit = try await RayPython.run(["job", "submit"] + address + ["--", "echo", "authorized"],
                                                     environment: ["RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token])
                #expect(submit.status == 0 && submit.output.contains("authorized"), "\(submit.output)")
                #expect(try await cluster.http("GET", "/api/jobs/", headers: ["Authorization": "Bearer \(token)"]).json() as? [Any] != nil)

            // The GCS and raylets check the same token on gRPC.
            let gcs = try RPCChannel(target: cluster.gcsAddress)
            do {
                _ = try await gcs.unary(GCSMethods.getAllNodeInfo, Ray_Rpc_GetAllNodeInfoRequest(), options: CallOptions(timeout: .seconds(5)))
                Issue.record("the GCS answered a call without the token")
            } catch {
                #expect(error.code == .unauthenticated, "\(error)")
            }
            let nodes = try await gcs.unary(GCSMethods.getAllNodeInfo, Ray_Rpc_GetAllNodeInfoRequest(),
                                            options: CallOptions(timeout: .seconds(5), metadata: ["authorization": "Bearer \(token)"]))
            #expect(nodes.nodeInfoList.count == 1)
            // A Swift driver in a job (it inherits the head's token) runs tasks; one without it is refused.
            let app = RayCLI.executable.deletingLastPathComponent().appendingPathComponent("ray-integration-app").path
            let authed = ["Authorization": "Bearer \(token)"]
            let job = try await cluster.http("POST", "/api/jobs/", body: Data(#"{"entrypoint": "\#(app) tasks 20"}"#.utf8), headers: authed).object()
            let id = try #require(job["submission_id"] as? String)
            var status = ""
            for _ in 0..<300 where !["SUCCEEDED", "FAILED"].contains(status) {
                status = try await cluster.http("GET", "/api/jobs/\(id)", headers: authed).object()["status"] as? String ?? ""
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(status == "SUCCEEDED")
            let noToken = try await RayPython.run(["tasks", "3"], timeout: .seconds(30),
                                                  environment: ["RAY_ADDRESS": cluster.gcsAddress], executable: app)
            #expect(noToken.status != 0 && noToken.output.contains("authentication token"), "\(noToken.output)")
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }

        @Test func everyNodeServesRaysMetricsThatPrometheusParsesAndTheHeadListsThemForDiscovery() async throws {
            let cluster = try await DashboardCluster.start()
            let second = try RayCLI()
            do {
                let joined = try await second.run(["start", "--address", cluster.gcsAddress, "--num-cpus", "1"])
                #expect(joined.status == 0, "\(joined.output)")
                let sd = try await cluster.http("GET", "/api/prometheus/sd")
                #expect(sd.status == 200)
                let groups = try #require(sd.json() as? [[String: Any]])
                #expect((groups.first?["labels"] as? [String: String]) == ["job": "ray"])
                let targets = try #require(groups.first?["targets"] as? [String])
                #expect(targets.count == 2, "\(targets)")

                let app = RayCLI.executable.deletingLastPathComponent().appendingPathComponent("ray-integration-app").path
                let id = try await cluster.submitted("\(app) state-hold")
                try await cluster.logsOnceReady(id)
                var head: [(name: String, labels: [String: String], value: Double)] = []
                var worker: [(name: String, labels: [String: String], value: Double)] = []
                var headTarget = ""
                for target in targets {
                    let samples = try await RayPython.scrape(target)
                    if samples.contains(where: { $0.name == "ray_node_cpu_count" && $0.labels["IsHeadNode"] == "true" }) {
                        head = samples
                        headTarget = target
                    } else {
                        worker = samples
                    }
                }
                func value(_ samples: [(name: String, labels: [String: String], value: Double)], _ name: String,
                           _ labels: [String: String]) -> Double? {
                    samples.first { sample in sample.name == name && labels.allSatisfy { key, value in sample.labels[key] == value } }?.value
                }
                #expect(value(head, "ray_actors", ["State": "ALIVE", "Name": "Counter", "Source": "gcs"]) == 1, "\(head)")
                #expect(value(head, "ray_placement_groups", ["State": "CREATED"]) == 1)
                // The job's tasks, by state and name, from the GCS's task events (reported within a
                // second of ending; each scrape samples afresh).
                var tasks = head
                for _ in 0..<100 {
                    if value(tasks, "ray_tasks", ["State": "FAILED", "Name": "fail"]) == 1 { break }
                    try await Task.sleep(for: .milliseconds(100))
                    tasks = try await RayPython.scrape(headTarget)
                }
                #expect(value(tasks, "ray_tasks", ["State": "FINISHED", "Name": "add", "IsRetry": "0", "Source": "owner"]) == 3, "\(tasks)")
                #expect(value(tasks, "ray_tasks", ["State": "FAILED", "Name": "fail"]) == 1, "\(tasks)")
                // The group's one-CPU bundle is reserved on one of the nodes (3 CPUs in all).
                let used = ["Name": "CPU", "State": "USED"], available = ["Name": "CPU", "State": "AVAILABLE"]
                #expect((value(head, "ray_resources", used) ?? 9) + (value(worker, "ray_resources", used) ?? 9) == 1)
                #expect((value(head, "ray_resources", available) ?? 9) + (value(worker, "ray_resources", available) ?? 9) == 2)
                #expect(value(head, "ray_cluster_active_nodes", [:]) == 2)
                #expect(value(worker, "ray_node_cpu_count", ["RayNodeType": "worker"]) == Double(ProcessInfo.processInfo.activeProcessorCount))
                #expect((value(worker, "ray_node_mem_total", [:]) ?? 0) > 0)
                #expect(!worker.contains { $0.name == "ray_actors" })  // the GCS's figures come from the head only

                // A state the actor left reads 0, not its last value.
                _ = try await cluster.http("POST", "/api/jobs/\(id)/stop")
                _ = try await cluster.waitForEnd(id)
                var alive: Double?
                for _ in 0..<100 {
                    alive = value(try await RayPython.scrape(headTarget), "ray_actors", ["State": "ALIVE", "Name": "Counter"])
                    if alive == 0 { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(alive == 0)
                #expect(value(try await RayPython.scrape(headTarget), "ray_actors", ["State": "DEAD", "Name": "Counter"]) == 1)

                // The file Ray's generated Prometheus config reads lists the same targets.
                let file = try #require(cluster.sessionDirectory) + "/prom_metrics_service_discovery.json"
                var listed = ""
                for _ in 0..<120 where !targets.allSatisfy(listed.contains) {
                    listed = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(targets.allSatisfy(listed.contains), "\(file): \(listed)")
            } catch { Issue.record(error) }
            await second.cleanUp()
            await cluster.cli.cleanUp()
        }

        @Test func raysStateCLIListsAndSummarizesOurTasksFromTheirEvents() async throws {
            let cluster = try await DashboardCluster.start()
            do {
                let app = RayCLI.executable.deletingLastPathComponent().appendingPathComponent("ray-integration-app").path
                let id = try await cluster.submitted("\(app) tasks 30 && \(app) errors && \(app) actors")
                let job = try await cluster.waitForEnd(id)
                #expect(job["status"] as? String == "SUCCEEDED", "\(job)")
                // Events reach the GCS within a report interval (1 s) of each step.
                var rows: [[String: Any]] = []
                for _ in 0..<100 {
                    let reply = try await cluster.http("GET", "/api/v0/tasks?limit=10000&detail=true&filter_keys=func_or_class_name&filter_predicates=%3D&filter_values=square").object()
                    rows = ((reply["data"] as? [String: Any])?["result"] as? [String: Any])?["result"] as? [[String: Any]] ?? []
                    if rows.filter({ $0["state"] as? String == "FINISHED" }).count >= 31 { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                // 30 squares from the first driver, and those the errors scenario runs.
                #expect(rows.filter { $0["state"] as? String == "FINISHED" }.count >= 31, "\(rows.count) rows")
                let row = try #require(rows.first)
                #expect(row["type"] as? String == "NORMAL_TASK" && row["language"] as? String == "SWIFT")
                #expect((row["required_resources"] as? [String: Double])?["CPU"] == 1, "\(row)")
                #expect((row["node_id"] as? String)?.count == 56 && row["worker_pid"] as? Int != nil, "\(row)")
                let created = row["creation_time_ms"] as? Int ?? 0, ended = row["end_time_ms"] as? Int ?? 0
                #expect(created > 1_600_000_000_000 && ended >= created, "\(row)")

                let failed = try await cluster.http("GET", "/api/v0/tasks?detail=true&filter_keys=func_or_class_name&filter_predicates=%3D&filter_values=fail").object()
                let failure = try #require((((failed["data"] as? [String: Any])?["result"] as? [String: Any])?["result"] as? [[String: Any]])?.first)
                #expect(failure["state"] as? String == "FAILED" && failure["error_type"] as? String == "TASK_EXECUTION_EXCEPTION", "\(failure)")
                #expect((failure["error_message"] as? String)?.isEmpty == false)

                let address = ["--address", cluster.url]
                let list = try await RayPython.run(["list", "tasks", "--filter", "func_or_class_name=fail"] + address)
                #expect(list.status == 0 && list.output.contains("FAILED") && list.output.contains("TASK_EXECUTION_EXCEPTION"), "\(list.output)")
                let summary = try await RayPython.run(["summary", "tasks"] + address)
                #expect(summary.status == 0 && summary.output.contains("square") && summary.output.contains("NORMAL_TASK"), "\(summary.output)")
                let actors = try await RayPython.run(["summary", "actors"] + address)
                #expect(actors.status == 0 && actors.output.contains("Counter"), "\(actors.output)")
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }
    }
}
