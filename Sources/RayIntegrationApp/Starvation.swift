// The starvation scenario: a driver with an embedded cluster and one of its workers each keep every
// thread of Swift's global pool busy with CPU-bound work, while the cluster is expected to go on:
// leases, pushes and results of other tasks, timeouts, cancellation (checked here, from a thread of
// the app's own) and registrations and health checks (checked by the test, from outside). And the
// threads scenario: where user code runs (never on a thread of the runtime).
import Distributed
@preconcurrency import Glibc
import Foundation
import Ray
import RayConcurrency

/// The calling thread's name.
func threadName() -> String {
    ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?").trimmingCharacters(in: .whitespacesAndNewlines)
}

/// The threads code runs on before and after it suspends.
func threadsAcrossASuspension() async throws -> [String] {
    let before = threadName()
    try await Task.sleep(for: .milliseconds(2))
    return [before, threadName()]
}

let taskThreads = RemoteFunction("taskThreads") { () async throws -> [String] in try await threadsAcrossASuspension() }

distributed actor Placement: RayActor {
    init(actorSystem: RayActorSystem, args: Int) { self.actorSystem = actorSystem }
    distributed func threads() async throws -> [String] { try await threadsAcrossASuspension() }
}

enum ThreadsScenario {
    /// Reports the threads a task, a sequential and a concurrent actor's method and the driver's own
    /// code ran on (comma-separated, before and after suspending).
    static func run(_ ray: Ray) async throws {
        IntegrationApp.report("task_threads", try await taskThreads.remote().get(timeout: .seconds(30)).joined(separator: ","))
        let sequential = try await ray.actor(Placement.self, args: 0)
        IntegrationApp.report("actor_threads", try await sequential.threads().joined(separator: ","))
        let concurrent = try await ray.actor(Placement.self, args: 0, options: ActorOptions(maxConcurrency: 4))
        let refs = try await (0..<4).asyncMap { _ in try await ray.submit { try await concurrent.threads() } }
        IntegrationApp.report("concurrent_actor_threads", try await ray.get(refs, timeout: .seconds(30)).flatMap { $0 }.joined(separator: ","))
        _ = try await square.remote(2).get(timeout: .seconds(30))
        IntegrationApp.report("driver_thread", threadName())
    }
}

/// Spins on `count` pool threads until `end`, never yielding.
func keepThePoolBusy(until end: ContinuousClock.Instant, threads count: Int) async -> Int {
    await withTaskGroup(of: Int.self) { group in
        for _ in 0..<count {
            group.addTask {
                var spins = 0
                while ContinuousClock.now < end { spins &+= 1 }
                return spins
            }
        }
        return await group.reduce(0, +)
    }
}

/// More CPU-bound jobs than the pool has threads (it may grow by one meanwhile).
let poolHogs = ProcessInfo.processInfo.activeProcessorCount + 2

/// A task that keeps its worker's whole pool busy for `seconds` (it says when it starts in `marker`).
let hogPool = RemoteFunction("hogPool") { (seconds: Double, marker: String) async throws -> Int in
    try "\(getpid())".write(toFile: marker, atomically: true, encoding: .utf8)
    return await keepThePoolBusy(until: .now + .milliseconds(Int(seconds * 1000)), threads: poolHogs)
}

enum StarvationScenario {
    static func run(_ arguments: [String], ray: Ray) async throws {
        let seconds = Double(arguments[1])!
        let marker = arguments[2]
        IntegrationApp.report("gcs_address", ray.gcsAddress)
        IntegrationApp.report("job_id", ray.jobID.hex)
        let hog = hogPool.remote(seconds, marker)
        let started = ContinuousClock.now + .seconds(30)
        while !FileManager.default.fileExists(atPath: marker) {
            guard ContinuousClock.now < started else { throw Failed("the pool-hogging task did not start within 30 s") }
            try await Task.sleep(for: .milliseconds(10))
        }
        // 100 small tasks, 10 ms each, on the one CPU the hog leaves: they run during the starvation.
        let small = (0..<100).map { _ in sleepMs.remote(10) }
        // From here on every thread of this process's pool spins: only the app's own thread (probe)
        // and the runtime's threads are left to run anything.
        let end = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        let hogs = Task.detached { await keepThePoolBusy(until: end, threads: poolHogs) }
        let probe = ThreadExecutor(name: "app-probe")
        let checks = Task(executorPreference: probe) { () async throws in
            IntegrationApp.report("starving", 1)
            var lap = ContinuousClock.now
            let values = try await ray.get(small, timeout: .seconds(15))
            IntegrationApp.report("small_tasks_ms", milliseconds(since: lap))
            IntegrationApp.report("small_sum", values.reduce(0, +))
            // And 100 more submitted now, from this thread.
            lap = ContinuousClock.now
            let more = try await ray.get((0..<100).map { square.remote($0) }, timeout: .seconds(15))
            IntegrationApp.report("more_tasks_ms", milliseconds(since: lap))
            IntegrationApp.report("more_sum", more.reduce(0, +))
            lap = ContinuousClock.now
            do {
                _ = try await hog.get(timeout: .milliseconds(100))
                throw Failed("the pool-hogging task finished early")
            } catch let error as RayError where error.kind == .getTimeout {
                IntegrationApp.report("get_timeout_ms", milliseconds(since: lap))
            }
            lap = ContinuousClock.now
            await ray.cancel(hog)
            IntegrationApp.report("cancel_ms", milliseconds(since: lap))
            IntegrationApp.report("probe_left_ms", milliseconds(until: end))
        }
        let spins = await hogs.value
        IntegrationApp.report("driver_spins_positive", spins > 0 ? 1 : 0)
        try await checks.value
        do {
            _ = try await hog.get(timeout: .seconds(60))
            throw Failed("a cancelled task returned a value")
        } catch let error as RayTaskError {
            IntegrationApp.report("hog_kind", error.kind.rawValue)
        }
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Int {
        Int((ContinuousClock.now - start) / .milliseconds(1))
    }

    static func milliseconds(until end: ContinuousClock.Instant) -> Int {
        Int((end - ContinuousClock.now) / .milliseconds(1))
    }
}
