import Foundation
import RayProtos
import RayRPC
import RayServices
import Testing

/// The control plane never waits for Swift's global pool: a driver with an embedded cluster and one of
/// its workers each keep every pool thread busy for 20 s, and meanwhile the cluster answers. Run on
/// its own after the rest of the suite (`make test` filters on `Starvation`): it keeps both cores busy.
@Suite(.serialized, .timeLimit(.minutes(3))) struct StarvationTests {
    static let starvation = 20

    @Test func theClusterKeepsWorkingWhileTheDriverAndAWorkerKeepTheirPoolsBusy() async throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("hog-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let app = try IntegrationApp.Running(["starve", String(Self.starvation), marker], environment: ["APP_NUM_CPUS": "2"])
        _ = try await app.value("starving", within: .seconds(60))
        let starvedAt = ContinuousClock.now
        let gcsAddress = try await app.value("gcs_address", within: .seconds(1))
        let jobID = try await app.value("job_id", within: .seconds(1))
        let gcs = try RPCChannel(target: gcsAddress)

        // The embedded GCS answers, and the embedded raylet's health check answers.
        let nodes = await within(.seconds(1), "the starved GCS lists its nodes") {
            try await gcs.unary(GCSMethods.getAllNodeInfo, Ray_Rpc_GetAllNodeInfoRequest(),
                                options: CallOptions(timeout: .seconds(5))).nodeInfoList
        }
        if let head = nodes?.first {
            let raylet = try RPCChannel(host: head.nodeManagerAddress, port: Int(head.nodeManagerPort))
            let health = await within(.seconds(1), "the starved raylet answers a health check") {
                try await raylet.unary(HealthMethods.check, Grpc_Health_V1_HealthCheckRequest(), options: CallOptions(timeout: .seconds(5)))
            }
            #expect(health?.status == .serving)

            // A lease no CPU is free for is answered `canceled` just before its 3 s deadline (300 ms
            // early), by a timer of the starved raylet (a stalled timer leaves the caller with
            // DEADLINE_EXCEEDED).
            var lease = Ray_Rpc_RequestWorkerLeaseRequest()
            lease.jobID = Data(hex: jobID)
            lease.requiredResources = ["CPU": 2]
            lease.ownerAddress.workerID = Data(repeating: 7, count: 28)
            lease.requestID = "starved"
            let answer = await within(.seconds(3), "the starved raylet answers a lease it cannot grant before its deadline") {
                try await raylet.unary(NodeManagerMethods.requestWorkerLease, lease, options: CallOptions(timeout: .seconds(3)))
            }
            #expect(answer?.canceled == true, "the starved raylet answered \(String(describing: answer))")
        } else {
            Issue.record("no node listed by the starved GCS")
        }

        // A second raylet registers with the starved GCS.
        if let joined = await within(.seconds(5), "a second raylet registers with the starved GCS", {
            try await SecondRaylet.start(gcsAddress: gcsAddress)
        }) {
            let alive = await within(.seconds(1), "the starved GCS lists both nodes") {
                try await gcs.unary(GCSMethods.getAllNodeInfo, Ray_Rpc_GetAllNodeInfoRequest(),
                                    options: CallOptions(timeout: .seconds(5))).nodeInfoList.filter { $0.state == .alive }
            }
            #expect(alive?.count == 2, "both raylets are alive in the GCS")
            await joined.stop()
        }
        #expect(ContinuousClock.now - starvedAt < .seconds(Self.starvation - 2), "the checks above ran while the app starved")

        let run = try await app.finish(timeout: .seconds(120))
        #expect(run.status == 0, "\(run.output)")
        // Checked inside the app, from a thread of its own, while every pool thread spun.
        print("starvation figures: " + ["small_tasks_ms", "more_tasks_ms", "get_timeout_ms", "cancel_ms", "probe_left_ms"]
            .map { "\($0)=\(run.values[$0] ?? "?")" }.joined(separator: " "))
        #expect(run.int("small_sum") == 1000, "100 tasks of 10 ms")
        #expect((run.int("small_tasks_ms") ?? .max) < 5000, "100 small tasks submitted before the starvation took \(run.values["small_tasks_ms"] ?? "?") ms")
        #expect(run.int("more_sum") == (0..<100).map { $0 * $0 }.reduce(0, +))
        #expect((run.int("more_tasks_ms") ?? .max) < 5000, "100 tasks submitted during the starvation took \(run.values["more_tasks_ms"] ?? "?") ms")
        #expect((run.int("get_timeout_ms") ?? .max) < 1000, "a get with a 100 ms timeout took \(run.values["get_timeout_ms"] ?? "?") ms to time out")
        #expect((run.int("cancel_ms") ?? .max) < 1000, "cancelling the running pool-hogging task took \(run.values["cancel_ms"] ?? "?") ms")
        #expect((run.int("probe_left_ms") ?? 0) > 5000, "the app's checks ended \(run.values["probe_left_ms"] ?? "?") ms before the starvation did")
        #expect(run.values["hog_kind"] == "TaskCancelledError", "the cancel reached the hogging task")
        #expect(run.int("driver_spins_positive") == 1)
    }
}

/// Runs `body`, recording an issue if it throws or takes `bound` or longer.
func within<T>(_ bound: Duration, _ what: String, _ body: () async throws -> T) async -> T? {
    let start = ContinuousClock.now
    do {
        let result = try await body()
        let took = ContinuousClock.now - start
        #expect(took < bound, "\(what): took \(took)")
        return result
    } catch {
        Issue.record("\(what): failed after \(ContinuousClock.now - start): \(error)")
        return nil
    }
}

/// `ray raylet` joining a cluster, in a process of its own.
struct SecondRaylet {
    let process: Process
    let took: Duration
    let directory: URL

    static func start(gcsAddress: String) async throws -> SecondRaylet {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("raylet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let portFile = directory.appendingPathComponent("port").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ray")
        process.arguments = ["raylet", "--gcs-address", gcsAddress, "--port", "0", "--port-file", portFile,
                             "--num-cpus", "1", "--log-dir", directory.path]
        var environment = ProcessInfo.processInfo.environment
        environment["GRPC_VERBOSITY"] = "NONE"
        environment["RAY_object_store_memory"] = String(64 << 20)
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let start = ContinuousClock.now
        try process.run()
        // The port file is written once the raylet registered with the GCS.
        while !FileManager.default.fileExists(atPath: portFile) {
            guard process.isRunning else { throw IntegrationApp.Failure("the second raylet exited with \(process.terminationStatus)") }
            guard ContinuousClock.now - start < .seconds(30) else {
                process.terminate()
                throw IntegrationApp.Failure("the second raylet did not register within 30 s")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        return SecondRaylet(process: process, took: ContinuousClock.now - start, directory: directory)
    }

    /// SIGTERM (it unregisters), then SIGKILL if it lingers.
    func stop() async {
        process.terminate()
        let deadline = ContinuousClock.now + .seconds(10)
        while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: directory)
    }
}

extension Data {
    init(hex: String) {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex), index != hex.endIndex {
            bytes.append(UInt8(hex[index..<next], radix: 16) ?? 0)
            index = next
        }
        self.init(bytes)
    }
}
