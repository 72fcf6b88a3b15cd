// A Ray program for the multi-process tests (Tests/RayTests): `ray-integration-app <scenario> [args]`.
// It runs as the driver and, re-launched by the raylet, as its own workers. Each scenario prints
// `key=value` lines the tests check, and exits non-zero if anything it checks itself fails.
@preconcurrency import Glibc
import Foundation
@_spi(RayTesting) import Ray

struct Failed: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct ValidationError: Error, CustomStringConvertible {
    var reason: String
    var description: String { "invalid input: \(reason)" }
}

/// A value whose encoding always fails (for the "result does not encode" case).
struct Unencodable: Codable, Sendable {
    init() {}
    init(from decoder: any Decoder) throws {}
    func encode(to encoder: any Encoder) throws { throw Failed("Unencodable refuses to encode") }
}

let square = RemoteFunction("square") { (x: Int) in x * x }
let maybeSquares = RemoteFunction("maybeSquares") { (n: Int) -> [Int]? in n < 0 ? nil : (0..<n).map { $0 * $0 } }
let add = RemoteFunction("add") { (a: Int, b: Int) in a + b }
let increment = RemoteFunction("increment") { (x: Int) in x + 1 }
let sumFloats = RemoteFunction("sumFloats") { (values: [Float]) in values.reduce(0, +) }
/// Bytes that are 7 except every 4096th, which varies with its index (fast to make in a debug build).
func pattern(_ count: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 7, count: count)
    for i in stride(from: 0, to: count, by: 4096) { bytes[i] = UInt8(truncatingIfNeeded: i / 4096 &* 31) }
    return bytes
}
/// A sum over every 4096th byte and the length: tells `pattern` apart from anything else.
func sparseChecksum<C: RandomAccessCollection>(_ bytes: C) -> UInt64 where C.Element == UInt8, C.Index == Int {
    var sum: UInt64 = 0
    for i in stride(from: bytes.startIndex, to: bytes.endIndex, by: 4096) { sum &+= UInt64(bytes[i]) &* UInt64(i + 1) }
    return sum &+ UInt64(bytes.count)
}
let checksum = RemoteFunction("checksum") { (bytes: [UInt8]) -> UInt64 in sparseChecksum(bytes) }
let makeBytes = RemoteFunction("makeBytes") { (count: Int) -> [UInt8] in pattern(count) }
let fail = RemoteFunction("fail") { (reason: String) -> Int in throw ValidationError(reason: reason) }
let workerPID = RemoteFunction("workerPID") { () -> Int32 in getpid() }
let sleepThenPID = RemoteFunction("sleepThenPID") { (path: String, milliseconds: Int) -> Int32 in
    try "\(getpid())".write(toFile: path, atomically: true, encoding: .utf8)
    try await Task.sleep(for: .milliseconds(milliseconds))
    return getpid()
}
/// Writes `<path>.started`, then returns once `path` exists (at most 90 s).
let holdUntil = RemoteFunction("holdUntil") { (path: String) -> Int in
    FileManager.default.createFile(atPath: path + ".started", contents: nil)
    let deadline = ContinuousClock.now + .seconds(90)
    while !FileManager.default.fileExists(atPath: path) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
    return 1
}
let sleepMs = RemoteFunction("sleepMs") { (milliseconds: Int) -> Int in
    try await Task.sleep(for: .milliseconds(milliseconds))
    return milliseconds
}
/// Sleeps and returns when it ran ([start, end], ns), for checks of which tasks or calls overlapped.
func timedSleep(_ milliseconds: Int) async throws -> [UInt64] {
    let start = DispatchTime.now().uptimeNanoseconds
    try await Task.sleep(for: .milliseconds(milliseconds))
    return [start, DispatchTime.now().uptimeNanoseconds]
}
let interval = RemoteFunction("interval") { (milliseconds: Int) -> [UInt64] in try await timedSleep(milliseconds) }
let fanOut = RemoteFunction("fanOut") { (n: Int) async throws -> Int in
    // A task that submits tasks and waits for them (its CPU is lent out while it waits).
    let refs = (0..<n).map { square.remote($0) }
    var total = 0
    for ref in refs { total += try await ref.get() }
    return total
}
let shout = RemoteFunction("shout") { (text: String) -> Int in
    print("worker says: \(text)")
    fflush(stdout)
    return text.count
}
let brokenResult = RemoteFunction("brokenResult") { () -> Unencodable in Unencodable() }
let takesUnencodable = RemoteFunction("takesUnencodable") { (_: Unencodable) in 1 }
/// Same name as `square`, another argument type: the worker decodes a String as an Int and fails.
let squareWithWrongType = RemoteFunction("square") { (x: String) in x }
/// Never registered: no worker knows it.
let unregistered = RemoteFunction("notRegisteredAnywhere") { () in 1 }
let sumRefs = RemoteFunction("sumRefs") { (refs: [ObjectRef<Int>]) async throws -> Int in
    var total = 0
    for ref in refs { total += try await ref.get() }
    return total
}

let divmod = MultiReturnFunction("divmod") { (a: Int, b: Int) in (a / b, a % b) }
let ranges = ManyReturnFunction("ranges") { (n: Int) in (0..<n).map { Array(0..<$0) } }
let stats = MultiReturnFunction("stats") { (values: [Double]) in (values.min() ?? 0, values.max() ?? 0, "\(values.count)") }
let byteCount = RemoteFunction("byteCount") { (bytes: [UInt8]) in bytes.count }
let dataCount = RemoteFunction("dataCount") { (data: Data) in data.count }
/// Spins without ever yielding (only a forced cancel stops it).
let spin = RemoteFunction("spin") { (seconds: Double) -> Int in
    let end = Date().addingTimeInterval(seconds)
    var n = 0
    while Date() < end { n &+= 1 }
    return n
}

/// A worker-wide place to keep references past the task that received them (a borrower).
final class Stash: @unchecked Sendable {
    static let shared = Stash()
    private let lock = NSLock()
    private var refs: [ObjectRef<[Double]>] = []
    func keep(_ new: [ObjectRef<[Double]>]) { lock.withLock { refs += new } }
    func first() -> ObjectRef<[Double]>? { lock.withLock { refs.first } }
    func clear() { lock.withLock { refs.removeAll() } }
}
let stash = RemoteFunction("stash") { (refs: [ObjectRef<[Double]>]) -> Int in
    Stash.shared.keep(refs)
    return refs.count
}
let sumStashed = RemoteFunction("sumStashed") { () async throws -> Double in
    guard let ref = Stash.shared.first() else { return -1 }
    return try await ref.get().reduce(0, +)
}
let clearStash = RemoteFunction("clearStash") { () -> Int in
    Stash.shared.clear()
    return 0
}

@main
struct IntegrationApp: RayApplication {
    static let remoteFunctions: [any AnyRemoteFunction] = [
        square, add, increment, sumFloats, checksum, makeBytes, fail, workerPID, sleepThenPID, sleepMs, interval,
        fanOut, shout, holdUntil, brokenResult, maybeSquares, takesUnencodable, sumRefs, divmod, ranges, stats, byteCount, dataCount, spin,
        stash, sumStashed, clearStash, hogPool, taskThreads,
    ] + actorFunctions + multiNodeFunctions + placementGroupFunctions

    static var localClusterOptions: Ray.LocalClusterOptions {
        var options = Ray.LocalClusterOptions()
        let environment = ProcessInfo.processInfo.environment
        if let cpus = environment["APP_NUM_CPUS"].flatMap(Int.init) { options.numCPUs = cpus }
        if let store = environment["APP_STORE_BYTES"].flatMap(Int.init) { options.objectStoreMemory = store }
        if environment["APP_SPECIAL"] != nil { options.resources = ["special": 1] }
        if environment["APP_DASHBOARD"] != nil { options.includeDashboard = true }
        return options
    }

    static func main(ray: Ray) async throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let scenario = arguments.first else { throw Failed("usage: ray-integration-app <scenario> [args]") }
        let start = ContinuousClock.now
        switch scenario {
        case "basic":
            let refs = (0..<100).map { square.remote($0) }
            let values = try await ray.get(refs)
            report("sum", values.reduce(0, +))
            let big = try await ray.put([Float](repeating: 1, count: 10_000_000))
            report("floats", Int(try await sumFloats.remote(big).get()))
            report("add", try await add.remote(square.remote(3), 4).get())
            // Small one-block values stay in the driver's memory, copied out of their direct encoding.
            report("small_array", try await ray.put([3, 1, 4]).get().map(String.init).joined(separator: ","))
            report("small_data", try await ray.put(Data([7, 8, 9])).get().map(String.init).joined(separator: ","))
            report("empty_array", try await ray.put([Double]()).get().count)
            report("small_string", try await ray.put("ok").get())
            report("optional_array", try await ray.put(Optional([5, 6])).get().map { "\($0)" } ?? "nil")
            report("optional_result", try await maybeSquares.remote(3).get().map { "\($0)" } ?? "nil")

        case "tasks":
            let count = Int(arguments[1])!
            let refs = (0..<count).map { square.remote($0) }
            let values = try await ray.get(refs, timeout: .seconds(120))
            report("count", values.count)
            report("sum", values.reduce(0, +))

        case "chain":
            let length = Int(arguments[1])!
            var ref = increment.remote(0)
            for _ in 1..<length { ref = increment.remote(ref) }
            report("chain", try await ref.get(timeout: .seconds(60)))

        case "bigobject":
            // 1 GiB through put and get, a task reading it in place, and a large task result.
            let count = Int(arguments[1])! * 1024 * 1024
            let local = sparseChecksum(pattern(count))
            let ref = try await ray.put(pattern(count))
            report("store_used_after_put", try await ray.objectStoreUsage().usedBytes >= count ? 1 : 0)
            report("remote_checksum_ok", try await checksum.remote(ref).get() == local ? 1 : 0)
            let buffer = try await ref.getBuffer()
            report("get_count_ok", buffer.count == count ? 1 : 0)
            report("get_checksum_ok", sparseChecksum(buffer) == local ? 1 : 0)
            let made = makeBytes.remote(64 * 1024 * 1024)
            report("result_ok", sparseChecksum(try await made.getBuffer()) == sparseChecksum(pattern(64 * 1024 * 1024)) ? 1 : 0)

        case "storezero":
            do {
                let refs = try await (0..<5).asyncMap { _ in try await ray.put([Double](repeating: 2, count: 1_000_000)) }
                let results = (0..<5).map { _ in makeBytes.remote(512 * 1024) }
                _ = try await ray.get(results)
                let during = try await ray.objectStoreUsage()
                report("objects_during", during.objects)
                report("used_during_positive", during.usedBytes > 0 ? 1 : 0)
                withExtendedLifetime(refs) {}  // the puts stay referenced until here
            }
            // Every ref is gone: the store empties (deletes are batched and asynchronous).
            let deadline = ContinuousClock.now + .seconds(10)
            var usage = try await ray.objectStoreUsage()
            while (usage.usedBytes != 0 || usage.objects != 0) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                usage = try await ray.objectStoreUsage()
            }
            report("objects_after", usage.objects)
            report("used_after", usage.usedBytes)
            report("owned_after", ray.objectCount)

        case "errors":
            do {
                _ = try await fail.remote("negative count").get()
                throw Failed("a throwing task returned a value")
            } catch let error as RayTaskError {
                report("task_error_kind", error.kind.rawValue)
                report("task_error_type", error.type)
                report("task_error_message", error.message)
                report("task_error_function", error.function)
            }
            do {
                _ = try await unregistered.remote().get()
                throw Failed("an unknown function returned a value")
            } catch let error as RayTaskError {
                report("unknown_function", error.message)
            }
            do {
                _ = try await squareWithWrongType.remote("seven").get()
                throw Failed("an undecodable argument returned a value")
            } catch let error as RayTaskError {
                report("bad_argument", error.message)
            }
            do {
                _ = try await brokenResult.remote().get()
                throw Failed("an unencodable result returned a value")
            } catch let error as RayTaskError {
                report("bad_result", error.message)
            }
            do {
                _ = try await takesUnencodable.remote(Unencodable()).get()
                throw Failed("an unencodable argument ran")
            } catch let error as RayTaskError {
                report("bad_argument_value_kind", error.kind.rawValue)
                report("bad_argument_value", error.message)
            }
            do {
                _ = try await ray.put(Unencodable())
                throw Failed("an unencodable value was put")
            } catch let error as RayError {
                report("bad_put_kind", error.kind.rawValue)
                report("bad_put", "\(error.message) | \(error.cause ?? "")")
            }
            report("still_works", try await square.remote(12).get())

        case "sigkill":
            let path = arguments[1]
            let ref = sleepThenPID.remote(path, 60_000)
            var pid: Int32?
            let deadline = ContinuousClock.now + .seconds(20)
            while pid == nil && ContinuousClock.now < deadline {
                pid = (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int32($0) }
                if pid == nil { try await Task.sleep(for: .milliseconds(20)) }
            }
            guard let pid else { throw Failed("the task never started") }
            let killed = ContinuousClock.now
            kill(pid, SIGKILL)
            do {
                _ = try await ref.get(timeout: .seconds(20))
                throw Failed("a killed task returned a value")
            } catch let error as RayTaskError {
                report("killed_kind", error.kind.rawValue)
                report("killed_ms", Int((ContinuousClock.now - killed) / .milliseconds(1)))
            }
            let after = try await workerPID.remote().get(timeout: .seconds(20))
            report("new_worker_differs", after != pid ? 1 : 0)

        case "resources":
            // Half-CPU tasks share one CPU two at a time; tasks needing the one "special" never overlap.
            let halves = (0..<4).map { _ in interval.options(numCPUs: 0.5).remote(400) }
            let halfIntervals = try await ray.get(halves, timeout: .seconds(60))
            report("half_cpu_max_overlap", maxOverlap(halfIntervals))
            let specials = (0..<3).map { _ in interval.options(numCPUs: 0, resources: ["special": 1]).remote(200) }
            report("special_max_overlap", maxOverlap(try await ray.get(specials, timeout: .seconds(60))))
            // No node could run it: as on a Ray cluster it waits (for a node that fits to join), the
            // driver is warned once, and cancelling it ends the wait.
            let infeasible = square.options(numCPUs: 64).remote(1)
            do {
                _ = try await infeasible.get(timeout: .seconds(2))
                throw Failed("an infeasible task ran")
            } catch let error as RayError {
                report("infeasible_kind", error.kind.rawValue)
            }
            await ray.cancel(infeasible)
            do {
                _ = try await infeasible.get(timeout: .seconds(10))
                throw Failed("a cancelled infeasible task ran")
            } catch let error as RayTaskError {
                report("cancelled_infeasible_kind", error.kind.rawValue)
            }

        case "nested":
            let refs = (0..<4).map { _ in fanOut.remote(10) }
            report("nested_sum", try await ray.get(refs, timeout: .seconds(60)).reduce(0, +))
            let inner = (0..<5).map { square.remote($0) }
            report("refs_in_value", try await sumRefs.remote(inner).get(timeout: .seconds(60)))

        case "wait":
            let fast = sleepMs.remote(10)
            let slow = sleepMs.remote(30_000)
            let (ready, notReady) = await ray.wait([fast, slow], numReturns: 1, timeout: .seconds(20))
            report("wait_ready", ready.count)
            report("wait_ready_is_fast", ready.first == fast ? 1 : 0)
            report("wait_not_ready", notReady.count)
            let waitStart = ContinuousClock.now
            let timedOut = await ray.wait([slow], numReturns: 1, timeout: .milliseconds(200))
            report("wait_timeout_ready", timedOut.ready.count)
            report("wait_timeout_ms", Int((ContinuousClock.now - waitStart) / .milliseconds(1)))
            do {
                _ = try await slow.get(timeout: .milliseconds(100))
                throw Failed("get returned before its task finished")
            } catch let error as RayError {
                report("get_timeout_kind", error.kind.rawValue)
            }
            await ray.cancel(slow)
            do {
                _ = try await slow.get(timeout: .seconds(20))
                throw Failed("a cancelled task returned a value")
            } catch let error as RayTaskError {
                report("cancel_kind", error.kind.rawValue)
            }

        case "logs":
            report("shout", try await shout.remote("hello from a task").get())
            report("log_dir", ray.logDirectory ?? "")
            // The raylet forwards lines as they come; give them a moment to arrive before exiting.
            try await Task.sleep(for: .milliseconds(300))

        case "more":
            let (quotient, remainder) = divmod.remote(17, 5)
            report("divmod", "\(try await quotient.get()),\(try await remainder.get())")
            let (low, high, count) = stats.remote([3, 1, 4, 1, 5, 9, 2, 6])
            report("stats", "\(try await low.get()),\(try await high.get()),\(try await count.get())")
            // As many returns as the call asks for; each its own object.
            let lists = try await ray.get(ranges.remote(300, numReturns: 300))
            report("many_returns", lists.enumerated().allSatisfy { $0.element == Array(0..<$0.offset) } ? lists.count : -1)
            do {
                _ = try await ranges.remote(3, numReturns: 4)[0].get(timeout: .seconds(30))
                report("many_returns_mismatch", "no error")
            } catch let error as RayTaskError {
                report("many_returns_mismatch", error.message)
            }
            // A 3 MB argument value goes through the store, not inline in the push.
            report("large_argument", try await byteCount.remote([UInt8](repeating: 1, count: 3_000_000)).get())
            let data = try await ray.put(Data(repeating: 42, count: 2_000_000))
            let shared = try await data.getData()
            report("data_zero_copy", shared.count == 2_000_000 && shared[1_999_999] == 42 ? 1 : 0)
            report("data_task", try await dataCount.remote(data).get())
            // A task that never yields is only stopped by force: its worker is killed.
            let spinning = spin.remote(60)
            try await Task.sleep(for: .milliseconds(300))
            let cancelStart = ContinuousClock.now
            await ray.cancel(spinning, force: true)
            do {
                _ = try await spinning.get(timeout: .seconds(20))
                throw Failed("a force-cancelled task returned")
            } catch let error as RayTaskError {
                report("force_cancel_kind", error.kind.rawValue)
                report("force_cancel_ms", Int((ContinuousClock.now - cancelStart) / .milliseconds(1)))
            }
            report("after_force_cancel", try await square.remote(5).get(timeout: .seconds(20)))

        case "borrow":
            // One CPU, one worker: the stash lives in that worker between tasks.
            do {
                let ref = try await ray.put([Double](repeating: 0.25, count: 1_000_000))   // 8 MB, in the store
                report("stashed", try await stash.remote([ref]).get())
            }
            // The driver's ObjectRef is gone; the worker still borrows the object, so it stays.
            try await Task.sleep(for: .milliseconds(300))
            report("objects_while_borrowed", try await ray.objectStoreUsage().objects)
            report("borrowed_sum", try await sumStashed.remote().get())
            _ = try await clearStash.remote().get()
            // The borrow ended: the owner frees the object.
            let deadline = ContinuousClock.now + .seconds(10)
            var usage = try await ray.objectStoreUsage()
            while usage.objects != 0 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                usage = try await ray.objectStoreUsage()
            }
            report("objects_after_borrow", usage.objects)

        case "storefull":
            // The store holds 64 MiB: a 100 MB put cannot fit, and nothing is lost by trying.
            do {
                _ = try await ray.put([UInt8](repeating: 1, count: 100_000_000))
                throw Failed("a put larger than the store succeeded")
            } catch let error as RayError {
                report("put_error_kind", error.kind.rawValue)
                report("put_error_names_size", error.message.contains("100000") ? 1 : 0)
            }
            let fits = try await ray.put([UInt8](repeating: 2, count: 10_000_000))
            report("after_full_put", try await byteCount.remote(fits).get())

        case "pool":
            // Prestarted: one worker per CPU before any task asks for one.
            var usage = try await ray.nodeStats()
            let deadline = ContinuousClock.now + .seconds(10)
            while usage.workers < 2 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                usage = try await ray.nodeStats()
            }
            report("prestarted", usage.workers)
            // Nested tasks on 2 CPUs start more workers (blocked ones lend their CPU) ...
            _ = try await ray.get((0..<4).map { _ in fanOut.remote(4) }, timeout: .seconds(60))
            report("peak_workers_above_cpus", try await ray.nodeStats().workers > 2 ? 1 : 0)
            // ... which are reaped once idle past the timeout, down to one per CPU.
            let reapDeadline = ContinuousClock.now + .seconds(15)
            usage = try await ray.nodeStats()
            while usage.workers > 2 && ContinuousClock.now < reapDeadline {
                try await Task.sleep(for: .milliseconds(50))
                usage = try await ray.nodeStats()
            }
            report("workers_after_idle", usage.workers)
            report("pool_still_works", try await square.remote(6).get(timeout: .seconds(20)))
            // Tasks one at a time keep their lease in between (held idle briefly), then give it back.
            for _ in 0..<200 { _ = try await workerPID.remote().get(timeout: .seconds(20)) }
            let returnDeadline = ContinuousClock.now + .seconds(10)
            var available = try await ray.nodeStats().available["CPU"] ?? 0
            while available < 2 && ContinuousClock.now < returnDeadline {
                try await Task.sleep(for: .milliseconds(10))
                available = try await ray.nodeStats().available["CPU"] ?? 0
            }
            report("cpus_available_after_sync_tasks", Int(available))

        case "starve":
            try await StarvationScenario.run(arguments, ray: ray)

        case "threads":
            try await ThreadsScenario.run(ray)

        case "hold":
            // Start workers, say who they are, and stay (for `ray stop` tests).
            let pids = Set(try await ray.get((0..<8).map { _ in workerPID.remote() }))
            report("worker_pids", pids.map(String.init).joined(separator: ","))
            // Then hold the node's 2 CPUs with one task and leave two more waiting (pending demand).
            let busy = (0..<3).map { _ in sleepMs.options(numCPUs: 2).remote(120_000) }
            report("busy_tasks", busy.count)
            try await Task.sleep(for: .seconds(120))

        case "embedded-dashboard":
            // An embedded cluster with its dashboard: say where it is, run tasks, stay until told.
            report("dashboard", ray.dashboardURL ?? "none")
            report("sum", try await ray.get((0..<5).map { square.remote($0) }).reduce(0, +))
            let deadline = ContinuousClock.now + .seconds(60)
            while !FileManager.default.fileExists(atPath: arguments[1]) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }

        case "queued-tasks":
            // A task holds the node's 2 CPUs until the file arguments[1] appears; two more wait
            // behind it for a worker (PENDING_NODE_ASSIGNMENT in the state API).
            let holder = holdUntil.options(numCPUs: 2).remote(arguments[1])
            let deadline = ContinuousClock.now + .seconds(60)
            while !FileManager.default.fileExists(atPath: arguments[1] + ".started") && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            let queued = (0..<2).map { square.remote($0 + 2) }
            let dependent = increment.remote(holder)  // waits for the holder's result (PENDING_ARGS_AVAIL)
            report("ready", 1)
            report("squares", try await ray.get(queued, timeout: .seconds(90)).map(String.init).joined(separator: ","))
            report("held", try await holder.get(timeout: .seconds(90)))
            report("dependent", try await dependent.get(timeout: .seconds(90)))

        case "log-sources":
            // What `ray logs` finds: an actor's and a task's prints in their workers' logs, then a
            // line every 100 ms in the driver's log until the file arguments[1] appears.
            let speaker = try await ray.actor(Counter.self, args: 0)
            report("actor_said", try await speaker.say("hello from an actor"))
            report("actor", speaker.id.actorID.hex)
            report("actor_pid", try await speaker.pid())
            let shouted = shout.remote("hello from a task")
            report("task_said", try await shouted.get(timeout: .seconds(30)))
            report("task", String(shouted.id.hex.prefix(48)))
            report("ready", 1)
            for tick in 0..<600 where !FileManager.default.fileExists(atPath: arguments[1]) {
                report("tick", tick)
                try await Task.sleep(for: .milliseconds(100))
            }

        case "state-hold":
            // What the state API lists: a named actor, a placement group, tasks' workers; then stay.
            let counter = try await ray.actor(Counter.self, args: 1, options: ActorOptions(name: "state-counter"))
            report("counter", try await counter.add(1))
            let group = try await ray.placementGroup([["CPU": 1]], strategy: .pack, name: "state-group")
            _ = try await group.ready().get(timeout: .seconds(30))
            // Three tasks that finish and one that fails, for the ray_tasks metric.
            report("sums", try await ray.get((0..<3).map { add.remote($0, 1) }, timeout: .seconds(30)).reduce(0, +))
            do { _ = try await fail.remote("on purpose").get(timeout: .seconds(30)) } catch {}
            // Objects this driver keeps, for `ray list objects`: a large put (shared memory), a small
            // one, and a task's return.
            let bigPut = try await ray.put([UInt8](repeating: 7, count: 2 << 20))
            let smallPut = try await ray.put(42)
            let returned = increment.remote(41)
            report("returned", try await returned.get(timeout: .seconds(30)))
            report("objects", [bigPut.id.hex, smallPut.id.hex, returned.id.hex].joined(separator: ","))
            report("ready", 1)
            try await Task.sleep(for: .seconds(120))
            withExtendedLifetime((bigPut, smallPut, returned)) {}

        default:
            var known = try await ActorScenarios.run(scenario, arguments, ray: ray)
            if !known { known = try await MultiNodeScenarios.run(scenario, arguments, ray: ray) }
            if !known { known = try await PlacementGroupScenarios.run(scenario, arguments, ray: ray) }
            if !known { known = try await AutoscalingScenarios.run(scenario, arguments, ray: ray) }
            guard known else { throw Failed("unknown scenario \(scenario)") }
        }
        report("driver_pid", Int(getpid()))
        report("elapsed_ms", Int((ContinuousClock.now - start) / .milliseconds(1)))
    }

    static func report(_ key: String, _ value: some CustomStringConvertible) {
        print("\(key)=\(value)")
        fflush(stdout)
    }

    /// The most intervals ([start, end]) that overlap at any moment.
    static func maxOverlap(_ intervals: [[UInt64]]) -> Int {
        var events: [(UInt64, Int)] = []
        for interval in intervals { events += [(interval[0], 1), (interval[1], -1)] }
        events.sort { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }
        var current = 0
        var best = 0
        for (_, change) in events {
            current += change
            best = max(best, current)
        }
        return best
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
