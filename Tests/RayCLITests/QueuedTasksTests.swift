import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

extension HeadServices {
    /// Tasks waiting for a worker (PENDING_NODE_ASSIGNMENT) or for their arguments
    /// (PENDING_ARGS_AVAIL) are listed by the state API while they wait, then FINISHED; the running
    /// one is RUNNING meanwhile.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct QueuedTasksTests {
        func tasks(_ cluster: DashboardCluster, _ name: String) async throws -> [[String: Any]] {
            let reply = try await cluster.http("GET", "/api/v0/tasks?detail=true&filter_keys=func_or_class_name&filter_predicates=%3D&filter_values=\(name)").object()
            return ((reply["data"] as? [String: Any])?["result"] as? [String: Any])?["result"] as? [[String: Any]] ?? []
        }

        /// Polls until `done` holds for the rows of `name` (20 s at most).
        func waitFor(_ cluster: DashboardCluster, _ name: String, _ done: ([[String: Any]]) -> Bool) async throws -> [[String: Any]] {
            var rows: [[String: Any]] = []
            for _ in 0..<200 {
                rows = try await tasks(cluster, name)
                if done(rows) { return rows }
                try await Task.sleep(for: .milliseconds(100))
            }
            return rows
        }

        @Test func tasksWaitingForAWorkerOrTheirArgumentsAreListedUntilTheyRun() async throws {
            let cluster = try await DashboardCluster.start()  // 2 CPUs
            do {
                let app = RayCLI.executable.deletingLastPathComponent().appendingPathComponent("ray-integration-app").path
                let release = cluster.cli.tempDir.appendingPathComponent("release-cpus").path
                let id = try await cluster.submitted("\(app) queued-tasks \(release)")
                let waiting = try await waitFor(cluster, "square") { rows in
                    rows.count == 2 && rows.allSatisfy { $0["state"] as? String == "PENDING_NODE_ASSIGNMENT" }
                }
                #expect(waiting.count == 2 && waiting.allSatisfy { $0["state"] as? String == "PENDING_NODE_ASSIGNMENT" }, "\(waiting)")
                #expect(waiting.allSatisfy { ($0["creation_time_ms"] as? Int ?? 0) > 1_600_000_000_000 && $0["worker_id"] is NSNull }, "\(waiting)")
                let dependent = try await waitFor(cluster, "increment") { $0.first?["state"] as? String == "PENDING_ARGS_AVAIL" }
                #expect(dependent.count == 1 && dependent.first?["state"] as? String == "PENDING_ARGS_AVAIL", "\(dependent)")
                let holder = try await waitFor(cluster, "holdUntil") { $0.first?["state"] as? String == "RUNNING" }
                #expect(holder.first?["state"] as? String == "RUNNING", "\(holder)")
                let summary = try await cluster.http("GET", "/api/v0/tasks/summarize").object()
                #expect("\(summary)".contains("PENDING_NODE_ASSIGNMENT"), "\(summary)")

                FileManager.default.createFile(atPath: release, contents: nil)
                let job = try await cluster.waitForEnd(id)
                #expect(job["status"] as? String == "SUCCEEDED", "\(job)")
                let ran = try await waitFor(cluster, "square") { rows in rows.count == 2 && rows.allSatisfy { $0["state"] as? String == "FINISHED" } }
                #expect(ran.count == 2 && ran.allSatisfy { $0["state"] as? String == "FINISHED" && $0["worker_id"] is String }, "\(ran)")
                let logs = try await cluster.http("GET", "/api/jobs/\(id)/logs").object()["logs"] as? String ?? ""
                #expect(logs.contains("squares=4,9") && logs.contains("dependent=2"), "\(logs)")
                let after = try await waitFor(cluster, "increment") { $0.first?["state"] as? String == "FINISHED" }
                #expect(after.first?["state"] as? String == "FINISHED", "\(after)")
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }
    }
}
