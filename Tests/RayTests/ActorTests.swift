import Foundation
import Testing

/// Actors as Swift distributed actors, end to end: the GCS leases a worker for each actor and runs its
/// initializer there; calls go straight from callers to the actor's worker process.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ActorTests {
    @Test func creationCallsErrorsNamesAndKill() async throws {
        let run = try await IntegrationApp.run(["actors"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.int("add") == 15, "init(args: 10) then add(5), in the actor's process")
        #expect(run.int("actor_pid_differs") == 1)
        #expect(run.int("submitted") == 16, "ray.submit returns a ref to the call's result")
        #expect(run.int("chained") == 256, "that ref passed to a task without a fetch")
        #expect(run.values["method_error_kind"] == "RayTaskError")
        #expect(run.values["method_error_type"] == "RayIntegrationApp.ValidationError")
        #expect(run.values["method_error_message"] == "invalid input: -3 is negative")
        #expect(run.values["method_error_function"] == "Counter.failIfNegative(_:)")
        #expect(run.int("alive_after_error") == 16, "a throwing method leaves the actor alive and unchanged")
        #expect(run.int("named_lookup") == 16)
        #expect(run.int("duplicate_name") == 1)
        #expect(run.int("wrong_type") == 1)
        #expect(run.int("through_task") == 116, "a task called the actor through a handle it received")
        #expect(run.values["init_error_type"] == "RayIntegrationApp.ValidationError")
        #expect(run.values["init_error_message"] == "invalid input: no good")
        #expect(run.values["unknown_method"]?.contains("has no distributed method") == true, "\(run.output)")
        #expect(run.int("alive_after_unknown") == 116)
        #expect(run.values["local_type"]?.contains("declared inside a function") == true, "\(run.output)")
        #expect(run.values["after_kill_kind"] == "ActorDiedError")
        #expect(run.values["after_kill_message"]?.contains("killed by ray.kill") == true, "\(run.output)")
        #expect(run.int("name_reused") == 1, "a killed actor's name is free")
    }

    @Test func tasksAndActorsCreateFindAndKillActors() async throws {
        let run = try await IntegrationApp.run(["actor-in-task"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.int("made_in_task") == 42, "a task created Counter(40), added 1 and returned the handle")
        #expect(run.int("named_from_task") == 10, "a task found the driver's named actor in the job's namespace")
        #expect(run.values["missing_from_task"]?.contains("no live actor named 'nobody'") == true, "\(run.output)")
        #expect(run.int("made_in_actor") == 105, "an actor's method created an actor")
        #expect(run.int("child_pid_differs") == 1)
        #expect(run.int("killed_in_task") == 1)
        #expect(run.values["after_task_kill"]?.contains("killed by ray.kill") == true, "\(run.output)")
    }

    @Test func callsRunInEachCallersOrder() async throws {
        let run = try await IntegrationApp.run(["actor-ordering"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.int("ordered") == 1, "1,000 pipelined calls returned 1...1000 in order")
        #expect(run.int("final") == 1000)
        #expect(run.int("entries") == 600)
        #expect(run.int("callers_in_order") == 1, "each of three callers' 200 calls ran in its order")
        #expect(run.int("task_pids_distinct") == 2, "two of the callers were tasks on two workers")
        #expect((run.int("caller_switches") ?? 0) >= 2, "the callers' calls interleaved")
    }

    @Test func anAsyncActorRunsCallsConcurrentlyADefaultOneDoesNot() async throws {
        let run = try await IntegrationApp.run(["actor-concurrency"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.int("async_overlap") == 8, "maxConcurrency 8: eight 500 ms naps at once")
        #expect((run.int("async_ms") ?? .max) < 3_000, "eight naps took about one nap")
        #expect(run.int("sequential_overlap") == 1, "a default actor runs one call at a time")
    }

    @Test func aSIGKILLedActorFailsPendingAndLaterCalls() async throws {
        let run = try await IntegrationApp.run(["actor-sigkill"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.values["pending_kind"] == "ActorDiedError")
        #expect(run.values["pending_message"]?.contains("killed by signal 9") == true, "\(run.output)")
        #expect((run.int("pending_ms") ?? .max) < 10_000, "the pending call failed within a deadline")
        #expect(run.values["later_kind"] == "ActorDiedError")
        #expect(run.values["later_message"]?.contains("killed by signal 9") == true, "\(run.output)")
    }

    /// Two drivers on one `ray start` cluster: the first creates a detached and a non-detached named
    /// actor and exits; the second finds the detached one (the other died with its owner), calls it
    /// and kills it.
    @Test func aDetachedActorOutlivesItsCreatorAndAKillEndsIt() async throws {
        let cluster = try await LocalCluster.start()
        do {
            let owner = try await IntegrationApp.run(["actor-owner"], environment: ["RAY_ADDRESS": cluster.address])
            #expect(owner.status == 0, "\(owner.output)")
            #expect(owner.int("keeper_value") == 42)
            let keeperPID = try #require(owner.int("keeper_pid").map { pid_t($0) })
            let tempPID = try #require(owner.int("temp_pid").map { pid_t($0) })
            #expect(try await waitUntil { !processIsAlive(tempPID) }, "the non-detached actor's worker \(tempPID) outlived its owner")
            #expect(processIsAlive(keeperPID), "the detached actor's worker died with its creator")

            let visitor = try await IntegrationApp.run(["actor-visitor"], environment: ["RAY_ADDRESS": cluster.address])
            #expect(visitor.status == 0, "\(visitor.output)")
            #expect(visitor.int("visitor_value") == 43, "another driver found the detached actor, state intact")
            #expect(visitor.int("temp_found") == 0, "the non-detached actor died with its owner")
            #expect(visitor.values["killed_kind"] == "ActorDiedError")
            #expect(visitor.int("keeper_found_after_kill") == 0)
            #expect(try await waitUntil { !processIsAlive(keeperPID) }, "ray.kill left the actor's worker \(keeperPID) alive")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }
}

/// Polls `condition` every 20 ms for up to `timeout`.
func waitUntil(timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

/// A cluster started with the built `ray start --head` in a fresh `RAY_TMPDIR`, stopped with `ray stop`.
struct LocalCluster {
    let address: String
    let temp: URL

    static var ray: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ray")
    }

    static func start() async throws -> LocalCluster {
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("swift-ray-cluster-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
        let output = try await run(["start", "--head", "--port", "0", "--num-cpus", "2"], temp: temp)
        guard let address = output.split(separator: "\n").first(where: { $0.contains("GCS address:") })?
            .split(separator: " ").last.map(String.init)
        else { throw ClusterError(message: "ray start printed no address: \(output)") }
        return LocalCluster(address: address, temp: temp)
    }

    func stop() async {
        _ = try? await Self.run(["stop"], temp: temp)
        try? FileManager.default.removeItem(at: temp)
    }

    struct ClusterError: Error { var message: String }

    /// Runs `ray <arguments>` to completion (at most 30 s) and returns its output.
    private static func run(_ arguments: [String], temp: URL) async throws -> String {
        let process = Process()
        process.executableURL = ray
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["RAY_TMPDIR"] = temp.path
        environment["GRPC_VERBOSITY"] = "NONE"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let deadline = ContinuousClock.now + .seconds(30)
        while process.isRunning {
            if ContinuousClock.now > deadline {
                process.terminate()
                throw ClusterError(message: "ray \(arguments.joined(separator: " ")) did not finish in 30 s")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        return String(decoding: data, as: UTF8.self)
    }
}
