import Foundation
import Testing

/// Ray Core on one machine, end to end: a driver with an embedded cluster (GCS and raylet in the
/// driver's process), workers re-launched from the same executable, tasks and objects between them.
/// Serialized: each test starts a cluster of several processes on a 2-core machine.
@Suite(.serialized, .timeLimit(.minutes(3))) struct TaskAndObjectTests {
    @Test func tasksObjectsAndRefsAsArguments() async throws {
        let run = try await IntegrationApp.run(["basic"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.int("sum") == (0..<100).map { $0 * $0 }.reduce(0, +))
        #expect(run.int("floats") == 10_000_000, "a 40 MB put passed to a task by reference")
        #expect(run.int("add") == 13, "a ref and a value as arguments of one task")
        #expect(run.values["small_array"] == "3,1,4")
        #expect(run.values["small_data"] == "7,8,9")
        #expect(run.int("empty_array") == 0)
        #expect(run.values["small_string"] == "ok")
        #expect(run.values["optional_array"] == "[5, 6]", "an optional array keeps its presence byte")
        #expect(run.values["optional_result"] == "[0, 1, 4]", "so does an optional array a task returns")
    }

    @Test func userCodeNeverRunsOnAThreadOfTheRuntime() async throws {
        let run = try await IntegrationApp.run(["threads"])
        #expect(run.status == 0, "\(run.output)")
        let runtime: Set<String> = ["ray-gcs", "ray-raylet", "ray-core-worker", "ray-rpc"]
        for key in ["task_threads", "actor_threads", "concurrent_actor_threads", "driver_thread"] {
            let names = (run.values[key] ?? "").split(separator: ",").map(String.init)
            #expect(!names.isEmpty, "\(key) reported")
            #expect(names.allSatisfy { !runtime.contains($0) }, "\(key): \(names)")
        }
    }

    @Test func tenThousandTasks() async throws {
        let run = try await IntegrationApp.run(["tasks", "10000"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.int("count") == 10_000)
        #expect(run.int("sum") == (0..<10_000).map { $0 * $0 }.reduce(0, +))
    }

    @Test func aChainOfHundredTasksEachTakingThePreviousRef() async throws {
        let run = try await IntegrationApp.run(["chain", "100"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.int("chain") == 100)
    }

    @Test func oneGibibyteThroughPutAndGet() async throws {
        let run = try await IntegrationApp.run(["bigobject", "1024"], timeout: .seconds(150))
        #expect(run.status == 0, "\(run.output)")
        #expect(run.int("store_used_after_put") == 1, "a 1 GiB put lives in the shared-memory store")
        #expect(run.int("remote_checksum_ok") == 1, "a worker reads the put's bytes")
        #expect(run.int("get_count_ok") == 1)
        #expect(run.int("get_checksum_ok") == 1, "the driver reads the bytes back in place")
        #expect(run.int("result_ok") == 1, "a 64 MiB task result comes back through the store")
    }

    @Test func storeUsageGoesBackToZeroWhenRefsGoOutOfScope() async throws {
        let run = try await IntegrationApp.run(["storezero"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.int("objects_during") == 10, "5 large puts and 5 large results in the store")
        #expect(run.int("used_during_positive") == 1)
        #expect(run.int("objects_after") == 0)
        #expect(run.int("used_after") == 0)
        #expect(run.int("owned_after") == 0, "the driver forgot every object")
    }

    @Test func errorsAreTypedNamedAndTheClusterKeepsWorking() async throws {
        let run = try await IntegrationApp.run(["errors"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.values["task_error_kind"] == "RayTaskError")
        #expect(run.values["task_error_type"] == "RayIntegrationApp.ValidationError")
        #expect(run.values["task_error_message"] == "invalid input: negative count")
        #expect(run.values["task_error_function"] == "fail")
        let unknown = run.values["unknown_function"] ?? ""
        #expect(unknown.contains("notRegisteredAnywhere") && unknown.contains("registered"), "\(unknown)")
        let badArgument = run.values["bad_argument"] ?? ""
        #expect(badArgument.contains("square") && badArgument.contains("Int"), "\(badArgument)")
        let badResult = run.values["bad_result"] ?? ""
        #expect(badResult.contains("brokenResult") && badResult.contains("Unencodable"), "\(badResult)")
        #expect(run.values["bad_argument_value_kind"] == "RaySerializationError")
        let badValue = run.values["bad_argument_value"] ?? ""
        #expect(badValue.contains("takesUnencodable") && badValue.contains("Unencodable"), "\(badValue)")
        #expect(run.values["bad_put_kind"] == "RaySerializationError")
        let badPut = run.values["bad_put"] ?? ""
        #expect(badPut.contains("Unencodable does not encode") && badPut.contains("refuses to encode"), "\(badPut)")
        #expect(run.int("still_works") == 144)
    }

    @Test func aSIGKILLedWorkerIsReportedAndReplaced() async throws {
        let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("pid-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: pidFile) }
        let run = try await IntegrationApp.run(["sigkill", pidFile])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.values["killed_kind"] == "WorkerCrashedError")
        #expect((run.int("killed_ms") ?? .max) < 10_000, "reported well within the deadline, not a hang")
        #expect(run.int("new_worker_differs") == 1, "the next task runs on a new worker")
    }

    @Test func fractionalAndCustomResourcesAreHonoured() async throws {
        let run = try await IntegrationApp.run(["resources"], environment: ["APP_NUM_CPUS": "1", "APP_SPECIAL": "1"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.int("half_cpu_max_overlap") == 2, "two half-CPU tasks at a time on one CPU")
        #expect(run.int("special_max_overlap") == 1, "one task at a time holds the only `special`")
        #expect(run.values["infeasible_kind"] == "GetTimeoutError", "an infeasible task waits for a node that fits")
        #expect(run.values["cancelled_infeasible_kind"] == "TaskCancelledError")
        #expect(run.output.contains("cannot be scheduled right now: {'CPU': 64.0}"), "the driver is warned: \(run.output)")
    }

    @Test func nestedTasksAndRefsInsideValues() async throws {
        // One CPU: the outer tasks lend theirs while they wait, so the inner ones can run.
        let run = try await IntegrationApp.run(["nested"], environment: ["APP_NUM_CPUS": "1"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.int("nested_sum") == 4 * (0..<10).map { $0 * $0 }.reduce(0, +))
        #expect(run.int("refs_in_value") == (0..<5).map { $0 * $0 }.reduce(0, +))
    }

    @Test func waitGetTimeoutAndCancel() async throws {
        let run = try await IntegrationApp.run(["wait"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.int("wait_ready") == 1)
        #expect(run.int("wait_ready_is_fast") == 1)
        #expect(run.int("wait_not_ready") == 1)
        #expect(run.int("wait_timeout_ready") == 0)
        #expect((run.int("wait_timeout_ms") ?? 0) >= 200)
        #expect(run.values["get_timeout_kind"] == "GetTimeoutError")
        #expect(run.values["cancel_kind"] == "TaskCancelledError")
    }

    @Test func workerOutputReachesTheDriverWithItsPidAndTheLogFiles() async throws {
        var logged = ""
        let run = try await IntegrationApp.run(["logs"]) { run in
            let directory = try #require(run.values["log_dir"])
            for file in try FileManager.default.contentsOfDirectory(atPath: directory) where file.hasSuffix(".out") {
                logged += (try? String(contentsOfFile: "\(directory)/\(file)", encoding: .utf8)) ?? ""
            }
        }
        #expect(logged.contains("worker says: hello from a task"), "the worker's log file has the line")
        #expect(run.status == 0, "\(run.output)")
        let line = run.output.split(separator: "\n").first { $0.contains("worker says: hello from a task") }
        #expect(line?.hasPrefix("(pid=") == true, "\(run.output)")
        #expect(line.map { !$0.contains("(pid=\(run.values["driver_pid"] ?? "")") } == true, "the pid is the worker's")
    }

    @Test func multipleReturnsLargeArgumentsDataAndForcedCancel() async throws {
        let run = try await IntegrationApp.run(["more"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.values["divmod"] == "3,2")
        #expect(run.values["stats"] == "1.0,9.0,8", "three returns of three types")
        #expect(run.int("many_returns") == 300, "300 returns chosen at the call, each its value")
        #expect(run.values["many_returns_mismatch"]?.contains("returned 3 objects, but num_returns=4") == true,
                "\(run.values["many_returns_mismatch"] ?? "none")")
        #expect(run.int("large_argument") == 3_000_000)
        #expect(run.int("data_zero_copy") == 1)
        #expect(run.int("data_task") == 2_000_000)
        #expect(run.values["force_cancel_kind"] == "TaskCancelledError")
        #expect((run.int("force_cancel_ms") ?? .max) < 10_000)
        #expect(run.int("after_force_cancel") == 25, "the cluster works after a worker was killed")
    }

    @Test func aWorkerKeepingAReferenceBorrowsTheObjectUntilItLetsGo() async throws {
        let run = try await IntegrationApp.run(["borrow"], environment: ["APP_NUM_CPUS": "1"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.int("stashed") == 1)
        #expect(run.int("objects_while_borrowed") == 1, "the owner keeps an object a worker still references")
        #expect(run.values["borrowed_sum"] == "250000.0")
        #expect(run.int("objects_after_borrow") == 0, "freed once the borrower let go")
    }

    @Test func workersArePrestartedReusedAndReapedWhenIdle() async throws {
        let run = try await IntegrationApp.run(["pool"], environment: ["APP_NUM_CPUS": "2"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.int("prestarted") == 2, "one worker per CPU before the first task")
        #expect(run.int("peak_workers_above_cpus") == 1, "blocked nested tasks needed more workers")
        #expect(run.int("workers_after_idle") == 2, "extra workers reaped after the idle timeout")
        #expect(run.int("pool_still_works") == 36)
        #expect(run.int("cpus_available_after_sync_tasks") == 2, "the idle lease went back to the raylet")
    }

    @Test func aPutThatCannotFitIsObjectStoreFullAndLosesNothing() async throws {
        let run = try await IntegrationApp.run(["storefull"], environment: ["APP_STORE_BYTES": "\(64 * 1024 * 1024)"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.values["put_error_kind"] == "ObjectStoreFullError")
        #expect(run.int("put_error_names_size") == 1)
        #expect(run.int("after_full_put") == 10_000_000, "the store works after the failed put")
    }

    @Test func connectingToNothingNamesTheAddressQuickly() async throws {
        let run = try await IntegrationApp.run(["basic"], environment: ["RAY_ADDRESS": "127.0.0.1:1"], timeout: .seconds(30))
        #expect(run.status != 0)
        #expect(run.output.contains("127.0.0.1:1"), "\(run.output)")
        #expect(run.elapsed < .seconds(10))
    }
}
