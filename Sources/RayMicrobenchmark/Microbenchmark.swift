// `ray-microbenchmark`: Ray's `ray microbenchmark` figures, measured the same way, on an embedded
// local cluster (plus a `ray start` cluster for the idle-memory figure). Build in release
// (`make bench`); prints `name: N per second` lines and, with `--json FILE`, one JSON object.
import ArgumentParser
import Distributed
@preconcurrency import Glibc
import Foundation
import Ray

let smallValue = RemoteFunction("smallValue") { () in [UInt8]("ok".utf8) }
let workerPID = RemoteFunction("workerPID") { () -> Int32 in getpid() }
/// A client submitting `n` tasks and waiting for them (Ray's multi-client benchmark uses actors;
/// these are zero-CPU tasks, as an actor holds no CPU while it runs).
let smallValueBatch = RemoteFunction("smallValueBatch") { (n: Int) async throws -> Int in
    let refs = (0..<n).map { _ in smallValue.remote() }
    for ref in refs { _ = try await ref.get() }
    return n
}

/// Ray's benchmark actor (`Actor` in ray_perf.py): returns b"ok".
distributed actor BenchActor: RayActor {
    init(actorSystem: RayActorSystem, args: Int) { self.actorSystem = actorSystem }
    distributed func smallValue() -> [UInt8] { [UInt8]("ok".utf8) }
}

/// Ray's `Client` actor: submits `n` calls to each of its servers, then gets them all.
distributed actor BenchClient: RayActor {
    let servers: [BenchActor]
    init(actorSystem: RayActorSystem, args servers: [BenchActor]) {
        self.actorSystem = actorSystem
        self.servers = servers
    }
    distributed func smallValueBatch(_ n: Int) async throws -> Int {
        var refs: [ObjectRef<[UInt8]>] = []
        refs.reserveCapacity(n * servers.count)
        for server in servers {
            for _ in 0..<n { refs.append(try await Ray.submit { try await server.smallValue() }) }
        }
        for ref in refs { _ = try await ref.get() }
        return refs.count
    }
}

/// Ray's n:n `work` task: `n` calls spread over the actors, then their results.
let actorWork = RemoteFunction("actorWork") { (actors: [BenchActor], n: Int) async throws -> Int in
    var refs: [ObjectRef<[UInt8]>] = []
    refs.reserveCapacity(n)
    for i in 0..<n {
        let actor = actors[i % actors.count]
        refs.append(try await Ray.submit { try await actor.smallValue() })
    }
    for ref in refs { _ = try await ref.get() }
    return n
}

/// The command line (`ray-microbenchmark --help`).
struct Options: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ray-microbenchmark",
        abstract: "Ray's microbenchmark figures on an embedded local cluster (build in release).")
    @Option(help: "Also write the figures as one JSON object to this file.")
    var json: String?
    @Option(help: "Only the figures whose name contains this (e.g. tasks, actor, none).")
    var only: String?
    @Option(help: "First time this many sync tasks and sync actor calls one by one (percentiles, µs).")
    var latency: Int?
    @Option(help: "The idle_cluster_cpu_percent window in seconds.")
    var idleSeconds = 60
    @Flag(help: .hidden)
    var coldStartChild = false

    func validate() throws {
        if let latency, latency < 10 { throw ValidationError("--latency takes at least 10 samples") }
        if idleSeconds < 1 { throw ValidationError("--idle-seconds takes at least 1") }
    }
}

@main
struct Microbenchmark: RayApplication {
    static let remoteFunctions: [any AnyRemoteFunction] = [smallValue, workerPID, smallValueBatch, actorWork]

    static var localClusterOptions: Ray.LocalClusterOptions {
        var options = Ray.LocalClusterOptions()
        // Enough store for the 800 MB put figures.
        options.objectStoreMemory = 4 * 1024 * 1024 * 1024
        // ray_perf.py's placement-group figure runs on ray.init(resources={"custom": 100}).
        options.resources = ["custom": 100]
        return options
    }

    static func main(ray: Ray) async throws {
        let options: Options
        do {
            options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
        } catch {
            // --help, or a flag it does not know: the message, and no figures.
            await ray.shutdown()
            let code = Options.exitCode(for: error)
            let message = Options.fullMessage(for: error) + "\n"
            if code.isSuccess { print(message, terminator: "") } else { FileHandle.standardError.write(Data(message.utf8)) }
            exit(code.rawValue)
        }
        if options.coldStartChild {
            // Started by the cold-start figure: one task, then say so.
            _ = try await smallValue.remote().get()
            print("first-result")
            fflush(stdout)  // stdout is a pipe: without this the line waits for exit
            return
        }
        let only = options.only
        var results: [(String, Double)] = []
        func record(_ name: String, _ value: Double, unit: String = "per second") {
            results.append((name, value))
            print("\(name): \(format(value)) \(unit)")
            fflush(stdout)
        }
        func wanted(_ name: String) -> Bool { only.map { name.contains($0) } ?? true }

        // Warm both workers.
        _ = try await ray.get((0..<100).map { _ in smallValue.remote() })

        if let count = options.latency {
            // Not Ray's: the distribution of one sync task's and one sync actor call's round trip. Its
            // low percentiles hold still on a busy host, where the rates above swing several times.
            let actor = try await ray.actor(BenchActor.self, args: 0)
            let tasks = try await latencies(count) { _ = try await smallValue.remote().get() }
            let calls = try await latencies(count) { _ = try await actor.smallValue() }
            for (name, sample) in [("single_client_tasks_sync", tasks), ("1_1_actor_calls_sync", calls)] {
                let line = [10, 25, 50, 90].map { "p\($0) \(format(sample[sample.count * $0 / 100])) µs" }.joined(separator: ", ")
                print("\(name)_latency: \(line)")
                results.append(("\(name)_p10_us", sample[sample.count / 10]))
                results.append(("\(name)_p50_us", sample[sample.count / 2]))
            }
        }

        if wanted("single_client_tasks_sync") {
            record("single_client_tasks_sync", try await timeit { _ = try await smallValue.remote().get() })
        }
        if wanted("single_client_tasks_async") {
            record("single_client_tasks_async", try await timeit(multiplier: 1000) {
                _ = try await ray.get((0..<1000).map { _ in smallValue.remote() })
            })
        }
        if wanted("multi_client_tasks_async") {
            let n = 10_000
            let clients = 4
            record("multi_client_tasks_async", try await timeit(multiplier: Double(n * clients)) {
                _ = try await ray.get((0..<clients).map { _ in smallValueBatch.options(numCPUs: 0).remote(n) })
            })
        }
        if wanted("single_client_put_calls") {
            var keep: [ObjectRef<Int>] = []
            record("single_client_put_calls", try await timeit {
                keep.append(try await ray.put(0))
                if keep.count > 10_000 { keep.removeAll(keepingCapacity: true) }
            })
        }
        if wanted("single_client_get_calls") {
            let value = try await ray.put(0)
            record("single_client_get_calls", try await timeit { _ = try await value.get() })
        }
        if wanted("single_client_put_gigabytes") || wanted("single_client_get_gigabytes") {
            // Ray: an 800 MB array of Int64 (np.zeros(100 * 1024 * 1024, dtype=np.int64)).
            let array = [Int64](repeating: 0, count: 100 * 1024 * 1024)
            let gigabytes = Double(array.count * 8) / 1e9
            if wanted("single_client_put_gigabytes") {
                record("single_client_put_gigabytes", try await timeit(multiplier: gigabytes, minimum: 3) {
                    _ = try await ray.put(array)
                })
            }
            if wanted("single_client_get_gigabytes") {
                let ref = try await ray.put(array)
                record("single_client_get_gigabytes", try await timeit(multiplier: gigabytes, minimum: 3) {
                    let buffer = try await ref.getBuffer()
                    precondition(buffer.count == array.count)
                })
                // Not Ray's figure: decoding into a fresh Swift array (one copy, page faults included).
                record("single_client_get_gigabytes_copied", try await timeit(multiplier: gigabytes, minimum: 3) {
                    let copy = try await ref.get()
                    precondition(copy.count == array.count)
                })
            }
        }
        if wanted("single_client_tasks_and_get_batch") {
            record("single_client_tasks_and_get_batch", try await timeit {
                _ = try await ray.get((0..<1000).map { _ in smallValue.remote() })
            })
        }
        if wanted("single_client_wait_1k_refs") {
            record("single_client_wait_1k_refs", try await timeit {
                var notReady = (0..<1000).map { _ in smallValue.remote() }
                while !notReady.isEmpty { notReady = await ray.wait(notReady, numReturns: 1).notReady }
            })
        }
        try await actorFigures(ray, wanted: wanted, record: { record($0, $1) })
        if wanted("placement_group_create/removal") {
            // ray_perf.py: 100 groups of one {"custom": 0.001} bundle made, each waited for, then removed.
            record("placement_group_create/removal", try await timeit(multiplier: 100) {
                var groups: [PlacementGroup] = []
                for _ in 0..<100 { groups.append(try await ray.placementGroup([["custom": 0.001]])) }
                for group in groups { guard try await group.wait(timeout: .seconds(30)) else { throw RayError(.system, "a placement group was not created in 30 s") } }
                for group in groups { try await ray.removePlacementGroup(group) }
            })
        }
        if wanted("cold_start_ms") {
            record("cold_start_ms", try await coldStartMilliseconds(), unit: "ms")
        }
        if wanted("idle_cluster_pss_mib") {
            record("idle_cluster_pss_mib", try await withIdleCluster { pids, _ in Double(pids.map(pssKiB).reduce(0, +)) / 1024 },
                   unit: "MiB")
        }
        if wanted("idle_cluster_cpu_percent") {
            let seconds = options.idleSeconds
            record("idle_cluster_cpu_percent", try await withIdleCluster { pids, roles in
                // CPU time (user + system) of each process over the window, as a share of one core.
                let before = pids.map(cpuTicks)
                try await Task.sleep(for: .seconds(seconds))
                let used = zip(pids.map(cpuTicks), before).map { $0 - $1 }
                let perRole = Dictionary(zip(roles, used).map { ($0, $1) }, uniquingKeysWith: +)
                print("  idle CPU ticks (\(ticksPerSecond)/s) over \(seconds) s: " + perRole.sorted { $0.key < $1.key }
                    .map { "\($0.key) \($0.value)" }.joined(separator: ", "))
                return Double(used.reduce(0, +)) / Double(ticksPerSecond * seconds) * 100
            }, unit: "% of one core")
        }
        if let jsonPath = options.json {
            let object = Dictionary(results, uniquingKeysWith: { _, last in last })
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: jsonPath))
        }
    }

    /// Ray's actor figures (ray_perf.py): one actor per figure, `n_cpu` = half the cores (at least 1).
    static func actorFigures(_ ray: Ray, wanted: (String) -> Bool, record: (String, Double) -> Void) async throws {
        func calls(_ actor: BenchActor, _ count: Int) async throws {
            var refs: [ObjectRef<[UInt8]>] = []
            refs.reserveCapacity(count)
            for _ in 0..<count { refs.append(try await ray.submit { try await actor.smallValue() }) }
            _ = try await ray.get(refs)
        }
        let nCPU = max(1, ProcessInfo.processInfo.activeProcessorCount / 2)
        if wanted("1_1_actor_calls_sync") {
            let actor = try await ray.actor(BenchActor.self, args: 0)
            record("1_1_actor_calls_sync", try await timeit { _ = try await actor.smallValue() })
        }
        if wanted("1_1_actor_calls_async") {
            let actor = try await ray.actor(BenchActor.self, args: 0)
            record("1_1_actor_calls_async", try await timeit(multiplier: 1000) { try await calls(actor, 1000) })
        }
        if wanted("1_1_actor_calls_concurrent") {
            let actor = try await ray.actor(BenchActor.self, args: 0, options: ActorOptions(maxConcurrency: 16))
            record("1_1_actor_calls_concurrent", try await timeit(multiplier: 1000) { try await calls(actor, 1000) })
        }
        if wanted("1_n_actor_calls_async") {
            let n = 5000
            var servers: [BenchActor] = []
            for _ in 0..<nCPU { servers.append(try await ray.actor(BenchActor.self, args: 0)) }
            let client = try await ray.actor(BenchClient.self, args: servers)
            record("1_n_actor_calls_async", try await timeit(multiplier: Double(n * servers.count)) {
                _ = try await client.smallValueBatch(n)
            })
        }
        if wanted("n_n_actor_calls_async") {
            let n = 5000
            let m = 4
            var actors: [BenchActor] = []
            for _ in 0..<nCPU { actors.append(try await ray.actor(BenchActor.self, args: 0)) }
            record("n_n_actor_calls_async", try await timeit(multiplier: Double(n * m)) {
                _ = try await ray.get((0..<m).map { _ in actorWork.remote(actors, n) })
            })
        }
        // Ray's async actors (async def methods) run up to 1,000 calls at once by default.
        if wanted("1_1_async_actor_calls_sync") {
            let actor = try await ray.actor(BenchActor.self, args: 0, options: ActorOptions(maxConcurrency: 1000))
            record("1_1_async_actor_calls_sync", try await timeit { _ = try await actor.smallValue() })
        }
        if wanted("1_1_async_actor_calls_async") {
            let actor = try await ray.actor(BenchActor.self, args: 0, options: ActorOptions(maxConcurrency: 1000))
            record("1_1_async_actor_calls_async", try await timeit(multiplier: 1000) { try await calls(actor, 1000) })
        }
    }

    /// How long each of `count` runs of `body` took, in µs, sorted.
    static func latencies(_ count: Int, _ body: () async throws -> Void) async throws -> [Double] {
        var sample: [Double] = []
        sample.reserveCapacity(count)
        for _ in 0..<count {
            let start = ContinuousClock.now
            try await body()
            sample.append(Double((ContinuousClock.now - start) / .nanoseconds(1)) / 1000)
        }
        return sample.sorted()
    }

    /// Ray's `timeit`: a 1 s warm-up, then `trials` runs of 2 s; the mean rate (times `multiplier`).
    static func timeit(multiplier: Double = 1, minimum: Int = 1, trials: Int = 4, _ body: () async throws -> Void)
        async throws -> Double
    {
        let warmupEnd = ContinuousClock.now + .seconds(1)
        repeat { try await body() } while ContinuousClock.now < warmupEnd
        var rates: [Double] = []
        for _ in 0..<trials {
            let start = ContinuousClock.now
            var count = 0
            repeat {
                try await body()
                count += 1
            } while ContinuousClock.now - start < .seconds(2) || count < minimum
            let seconds = Double((ContinuousClock.now - start) / .microseconds(1)) / 1e6
            rates.append(Double(count) * multiplier / seconds)
        }
        return rates.reduce(0, +) / Double(rates.count)
    }

    /// This executable started fresh (its own embedded cluster) until its first task result, median of 5.
    static func coldStartMilliseconds() async throws -> Double {
        var times: [Double] = []
        for _ in 0..<5 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            process.arguments = ["--cold-start-child"]
            var environment = ProcessInfo.processInfo.environment
            environment["RAY_ADDRESS"] = nil
            process.environment = environment
            let pipe = Pipe()
            process.standardOutput = pipe
            let start = ContinuousClock.now
            try process.run()
            var seen = Data()
            while !String(decoding: seen, as: UTF8.self).contains("first-result") {
                let chunk = pipe.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                seen.append(chunk)
            }
            let elapsed = ContinuousClock.now - start
            process.waitUntilExit()
            guard String(decoding: seen, as: UTF8.self).contains("first-result") else {
                throw RayError(.system, "the cold-start child printed no result")
            }
            times.append(Double(elapsed / .microseconds(1)) / 1000)
        }
        return times.sorted()[times.count / 2]
    }

    /// Runs `measure` on an idle `ray start --head --num-cpus 2` cluster: its GCS and raylet and the 2
    /// workers a driver (this process, not measured) started on it, with what each pid is.
    static func withIdleCluster(_ measure: (_ pids: [pid_t], _ roles: [String]) async throws -> Double) async throws -> Double {
        let rayExecutable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("ray").path
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("swift-ray-idle-\(getpid())").path
        defer {
            _ = try? run(rayExecutable, ["stop", "--temp-dir", temp])
            try? FileManager.default.removeItem(atPath: temp)
        }
        let started = try run(rayExecutable, ["start", "--head", "--port", "0", "--num-cpus", "2", "--temp-dir", temp])
        guard let address = started.split(separator: "\n").first(where: { $0.contains("GCS address:") })?
            .split(separator: " ").last.map(String.init)
        else { throw RayError(.system, "ray start printed no address: \(started)") }
        // "role pid" lines: the GCS and the raylet.
        let recorded = try String(contentsOfFile: "\(temp)/session_latest/processes", encoding: .utf8)
            .split(separator: "\n").compactMap { line -> (role: String, pid: pid_t)? in
                let parts = line.split(separator: " ")
                guard parts.count == 2, let pid = pid_t(parts[1]) else { return nil }
                return (String(parts[0]), pid)
            }
        let cluster = try await Ray.start(address: address, functions: remoteFunctions)
        var seen = Set<Int32>()
        let deadline = ContinuousClock.now + .seconds(20)
        while seen.count < 2 && ContinuousClock.now < deadline {
            seen.formUnion(try await cluster.get((0..<50).map { _ in workerPID.remote() }))
        }
        let workers = Array(seen)
        // Idle for a while, as a cluster waiting for work is.
        try await Task.sleep(for: .seconds(2))
        let result = try await measure(recorded.map(\.pid) + workers, recorded.map(\.role) + workers.map { _ in "worker" })
        await cluster.shutdown()
        return result
    }

    static let ticksPerSecond = Int(sysconf(Int32(_SC_CLK_TCK)))

    /// utime + stime of `pid`, in clock ticks (/proc/<pid>/stat fields 14 and 15).
    static func cpuTicks(_ pid: pid_t) -> Int {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3): utime and stime are fields 14 and 15.
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return 0 }
        return user + system
    }

    static func pssKiB(_ pid: pid_t) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("Pss:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        return 0
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    static func format(_ value: Double) -> String {
        value >= 100 ? String(Int(value.rounded())) : String(format: "%.2f", value)
    }
}
