import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

extension DashboardCluster {
    /// The placement groups `/api/v0/placement_groups` lists, as (state, bundles) rows.
    func placementGroups() async throws -> [[String: Any]] {
        let reply = try await http("GET", "/api/v0/placement_groups?detail=true").object()
        return ((reply["data"] as? [String: Any])?["result"] as? [String: Any])?["result"] as? [[String: Any]] ?? []
    }

    /// Holds the job's status for `duration`, failing if it changes.
    func staysPending(_ id: String, for duration: Duration) async throws {
        let until = ContinuousClock.now + duration
        while ContinuousClock.now < until {
            let details = try await http("GET", "/api/jobs/\(id)").object()
            #expect(details["status"] as? String == "PENDING", "\(details)")
            #expect(details["message"] as? String
                == "Job has not started yet. It may be waiting for resources (CPUs, GPUs, memory, custom resources) to become available.")
            if details["status"] as? String != "PENDING" { return }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

extension HeadServices {
    /// `entrypoint_num_cpus` and the rest are held while a job's entrypoint runs (on the head, where
    /// our entrypoints run): a job that asks for what another holds waits PENDING, a job the head
    /// could never hold fails at once, and a job that waits too long fails as Ray's does.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct EntrypointResourcesTests {
        @Test func heldResourcesQueueTheNextJobUntilTheyAreGivenBack() async throws {
            let cluster = try await DashboardCluster.start()  // 2 CPUs
            do {
                let pids = cluster.cli.tempDir.appendingPathComponent("a.pids").path
                let a = try await cluster.submitted("echo $$ > \(pids); sleep 300", extra: #", "entrypoint_num_cpus": 2"#)
                _ = try await cluster.waitFor(a) { $0["status"] as? String == "RUNNING" }
                let holding = try await cluster.placementGroups().filter { $0["state"] as? String == "CREATED" }
                #expect(holding.count == 1, "\(holding)")

                let b = try await cluster.submitted("echo b-ran", extra: #", "entrypoint_num_cpus": 1"#)
                let c = try await cluster.submitted("echo c-ran", extra: #", "entrypoint_num_cpus": 2"#)
                try await cluster.staysPending(b, for: .seconds(2))
                // A waiting job can be stopped: it never runs and holds nothing.
                #expect(try await cluster.http("POST", "/api/jobs/\(c)/stop").object()["stopped"] as? Bool == true)
                let stoppedC = try await cluster.waitForEnd(c)
                #expect(stoppedC["status"] as? String == "STOPPED")
                #expect(try await cluster.http("GET", "/api/jobs/\(c)/logs").object()["logs"] as? String == "")
                try await cluster.staysPending(b, for: .milliseconds(500))

                #expect(try await cluster.http("POST", "/api/jobs/\(a)/stop").object()["stopped"] as? Bool == true)
                #expect(try await cluster.waitForEnd(a)["status"] as? String == "STOPPED")
                let ranB = try await cluster.waitForEnd(b)
                #expect(ranB["status"] as? String == "SUCCEEDED", "\(ranB)")
                #expect(ranB["driver_node_id"] as? String != nil)
                #expect(try await cluster.http("GET", "/api/jobs/\(b)/logs").object()["logs"] as? String == "b-ran\n")
                // Every reservation is given back once its job ended.
                let groups = try await cluster.placementGroups()
                #expect(groups.count == 3 && groups.allSatisfy { $0["state"] as? String == "REMOVED" }, "\(groups)")
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }

        /// The pid of the `ray job-supervisor` process running job `id`, from /proc.
        static func supervisorPID(_ id: String) -> pid_t? {
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = pid_t(entry) else { continue }
                let fd = open("/proc/\(pid)/cmdline", O_RDONLY)
                guard fd >= 0 else { continue }
                var bytes = [UInt8](repeating: 0, count: 8192)
                let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                close(fd)
                guard n > 0 else { continue }
                let words = bytes[0..<n].split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                if words.contains("job-supervisor") && words.contains(id) { return pid }
            }
            return nil
        }

        @Test func aSupervisorThatDiesGivesItsResourcesBack() async throws {
            let cluster = try await DashboardCluster.start()  // 2 CPUs
            do {
                let pids = cluster.cli.tempDir.appendingPathComponent("a.pids").path
                let a = try await cluster.submitted("echo $$ > \(pids); sleep 300", extra: #", "entrypoint_num_cpus": 2"#)
                _ = try await cluster.waitFor(a) { $0["status"] as? String == "RUNNING" }
                let supervisor = try #require(Self.supervisorPID(a))
                kill(supervisor, SIGKILL)
                let died = try await cluster.waitForEnd(a)
                #expect(died["status"] as? String == "FAILED" && died["error_type"] as? String == "JOB_SUPERVISOR_ACTOR_DIED", "\(died)")
                #expect(try await cluster.placementGroups().allSatisfy { $0["state"] as? String == "REMOVED" })
                // The CPUs it held are free for the next job.
                let b = try await cluster.submitted("echo b-ran", extra: #", "entrypoint_num_cpus": 2"#)
                #expect(try await cluster.waitForEnd(b)["status"] as? String == "SUCCEEDED")
                if let entrypoint = try? await readPIDs(pids, count: 1).first { kill(-entrypoint, SIGKILL) }
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }

        @Test func aJobTheHeadCouldNeverHoldFailsAtOnce() async throws {
            let cluster = try await DashboardCluster.start()
            do {
                let started = ContinuousClock.now
                let id = try await cluster.submitted("echo never", extra: #", "entrypoint_num_gpus": 1"#)
                let details = try await cluster.waitForEnd(id)
                #expect(ContinuousClock.now - started < .seconds(10))
                #expect(details["status"] as? String == "FAILED")
                #expect(details["error_type"] as? String == "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE")
                let message = details["message"] as? String ?? ""
                #expect(message.contains("{GPU: 1.0} can never be held on the head node"), "\(message)")
                #expect(try await cluster.http("GET", "/api/jobs/\(id)/logs").object()["logs"] as? String == "")
                #expect(try await cluster.placementGroups().allSatisfy { $0["state"] as? String == "REMOVED" })
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }

        @Test func aJobThatWaitsPastTheStartTimeoutFailsAsRaysDoes() async throws {
            let cluster = try await DashboardCluster.start(["--resources", #"{"slot": 1}"#],
                                                           environment: ["RAY_JOB_START_TIMEOUT_SECONDS": "2"])
            do {
                let holder = try await cluster.submitted("sleep 300", extra: #", "entrypoint_resources": {"slot": 1}"#)
                _ = try await cluster.waitFor(holder) { $0["status"] as? String == "RUNNING" }
                let waiter = try await cluster.submitted("echo late", extra: #", "entrypoint_resources": {"slot": 1}"#)
                let details = try await cluster.waitForEnd(waiter)
                #expect(details["status"] as? String == "FAILED")
                #expect(details["error_type"] as? String == "JOB_SUPERVISOR_ACTOR_START_TIMEOUT")
                #expect((details["message"] as? String ?? "").hasPrefix(
                    "Job supervisor actor failed to start within 2.0 seconds. This timeout can be configured by setting the environment variable RAY_JOB_START_TIMEOUT_SECONDS."),
                        "\(details)")
                // The one that holds the slot is still running.
                #expect(try await cluster.http("GET", "/api/jobs/\(holder)").object()["status"] as? String == "RUNNING")
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }
    }
}
