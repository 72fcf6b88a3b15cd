// Actor types and scenarios of the integration app (Tests/RayTests/ActorTests.swift drives them).
import Distributed
@preconcurrency import Glibc
import Foundation
@_spi(RayTesting) import Ray

distributed actor Counter: RayActor {
    var value: Int
    init(actorSystem: RayActorSystem, args start: Int) {
        self.actorSystem = actorSystem
        value = start
    }
    distributed func add(_ n: Int) -> Int {
        value += n
        return value
    }
    distributed func current() -> Int { value }
    distributed func pid() -> Int32 { getpid() }
    /// Prints to its worker's log (for `ray logs actor`).
    distributed func say(_ text: String) -> Int {
        print("actor says: \(text)")
        fflush(stdout)
        return text.count
    }
    /// Throws without changing the count: the actor must stay usable.
    distributed func failIfNegative(_ n: Int) throws -> Int {
        if n < 0 { throw ValidationError(reason: "\(n) is negative") }
        value += n
        return value
    }
    /// Sleeps (the actor runs nothing else meanwhile) and reports when it ran.
    distributed func nap(_ milliseconds: Int) async throws -> [UInt64] {
        try await timedSleep(milliseconds)
    }
}

/// An async actor: its calls interleave at their `await`s (created with maxConcurrency > 1).
distributed actor Sleeper: RayActor {
    init(actorSystem: RayActorSystem, args: Int) { self.actorSystem = actorSystem }
    distributed func nap(_ milliseconds: Int) async throws -> [UInt64] {
        try await timedSleep(milliseconds)
    }
}

/// Records (caller, index) pairs in the order calls ran.
distributed actor EventLog: RayActor {
    var entries: [[Int]] = []
    init(actorSystem: RayActorSystem, args: Int) { self.actorSystem = actorSystem }
    distributed func append(_ caller: Int, _ index: Int) { entries.append([caller, index]) }
    distributed func all() -> [[Int]] { entries }
}

/// Its initializer throws: creation fails with the error.
distributed actor Doomed: RayActor {
    init(actorSystem: RayActorSystem, args reason: String) throws {
        self.actorSystem = actorSystem
        throw ValidationError(reason: reason)
    }
    distributed func never() -> Int { 0 }
}

/// A task that calls an actor whose handle it received.
let logFromTask = RemoteFunction("logFromTask") { (log: EventLog, caller: Int, count: Int) async throws -> Int32 in
    for index in 0..<count { try await log.append(caller, index) }
    return getpid()
}

/// What a task gets back from an actor through a handle.
let addThroughHandle = RemoteFunction("addThroughHandle") { (counter: Counter, n: Int) async throws -> Int in
    try await counter.add(n)
}

/// A task that creates an actor (owned by its worker), calls it, and returns its handle.
let makeCounterInTask = RemoteFunction("makeCounterInTask") { (start: Int) async throws -> Counter in
    let counter = try await Ray.actor(Counter.self, args: start)
    _ = try await counter.add(1)
    return counter
}

/// A task that finds an actor by name in the job's namespace and calls it.
let addToNamed = RemoteFunction("addToNamed") { (name: String, n: Int) async throws -> Int in
    try await Ray.getActor(Counter.self, named: name).add(n)
}

/// A task that kills the actor it received.
let killInTask = RemoteFunction("killInTask") { (counter: Counter) async throws -> Int in
    try await Ray.kill(counter)
    return 1
}

let actorFunctions: [any AnyRemoteFunction] = [logFromTask, addThroughHandle, makeCounterInTask, addToNamed, killInTask]

/// An actor whose method creates another actor.
distributed actor Spawner: RayActor {
    init(actorSystem: RayActorSystem, args: Int) { self.actorSystem = actorSystem }
    distributed func spawn(_ start: Int) async throws -> Counter {
        try await Ray.actor(Counter.self, args: start)
    }
}

enum ActorScenarios {
    static func report(_ key: String, _ value: some CustomStringConvertible) { IntegrationApp.report(key, value) }

    /// Runs `scenario` if it is an actor scenario (true), else returns false.
    static func run(_ scenario: String, _ arguments: [String], ray: Ray) async throws -> Bool {
        switch scenario {
        case "actors": try await basics(ray)
        case "actor-ordering": try await ordering(ray)
        case "actor-concurrency": try await concurrency(ray)
        case "actor-sigkill": try await sigkill(ray)
        case "actor-owner": try await owner(ray)
        case "actor-visitor": try await visitor(ray)
        case "actor-in-task": try await createdInTasks(ray)
        default: return false
        }
        return true
    }

    /// Actors created, found and killed inside tasks and actor methods (no `Ray` value there).
    static func createdInTasks(_ ray: Ray) async throws {
        let made = try await makeCounterInTask.remote(40).get(timeout: .seconds(30))
        report("made_in_task", try await made.add(1))
        _ = try await ray.actor(Counter.self, args: 7, options: ActorOptions(name: "shared"))
        report("named_from_task", try await addToNamed.remote("shared", 3).get(timeout: .seconds(30)))
        do {
            _ = try await addToNamed.remote("nobody", 1).get(timeout: .seconds(30))
            throw Failed("a task found an actor no one created")
        } catch let error as RayTaskError {
            report("missing_from_task", error.message)
        }
        let spawner = try await ray.actor(Spawner.self, args: 0)
        let child = try await spawner.spawn(100)
        report("made_in_actor", try await child.add(5))
        report("child_pid_differs", try await child.pid() != (try await made.pid()) ? 1 : 0)
        report("killed_in_task", try await killInTask.remote(made).get(timeout: .seconds(30)))
        do {
            _ = try await made.add(1)
            throw Failed("an actor killed by a task answered")
        } catch let error as RayTaskError {
            report("after_task_kill", error.message)
        }
    }

    /// Creation, calls, a pipelined call, errors that leave the actor alive, named lookup, kill.
    static func basics(_ ray: Ray) async throws {
        let counter = try await ray.actor(Counter.self, args: 10, options: ActorOptions(name: "c1"))
        report("add", try await counter.add(5))
        let ref: ObjectRef<Int> = try await ray.submit { try await counter.add(1) }
        report("submitted", try await ref.get(timeout: .seconds(20)))
        // A result passed to a task without fetching it.
        report("chained", try await square.remote(ref).get(timeout: .seconds(20)))
        let actorPID = try await counter.pid()
        report("actor_pid_differs", actorPID != getpid() ? 1 : 0)

        do {
            _ = try await counter.failIfNegative(-3)
            throw Failed("a throwing method returned")
        } catch let error as RayTaskError {
            report("method_error_kind", error.kind.rawValue)
            report("method_error_type", error.type)
            report("method_error_message", error.message)
            report("method_error_function", error.function)
        }
        report("alive_after_error", try await counter.add(0))

        let same = try await ray.getActor(Counter.self, named: "c1")
        report("named_lookup", try await same.current())
        do {
            _ = try await ray.actor(Counter.self, args: 0, options: ActorOptions(name: "c1"))
            throw Failed("a second actor took a name in use")
        } catch let error as RayError {
            report("duplicate_name", error.message.contains("already exists") ? 1 : 0)
        }
        do {
            _ = try await ray.getActor(Sleeper.self, named: "c1")
            throw Failed("getActor returned an actor of another type")
        } catch let error as RayError {
            report("wrong_type", error.message.contains("is a Counter") ? 1 : 0)
        }

        // An actor handle passed to a task: the task calls the actor.
        report("through_task", try await addThroughHandle.remote(counter, 100).get(timeout: .seconds(20)))

        // The initializer threw: creation fails with its error, typed.
        do {
            _ = try await ray.actor(Doomed.self, args: "no good")
            throw Failed("a failing initializer created an actor")
        } catch let error as RayTaskError {
            report("init_error_type", error.type)
            report("init_error_message", error.message)
        }

        // A method the worker does not have (as from another build of the program).
        do {
            _ = try await ray._callUnknownMethod(on: counter).get(timeout: .seconds(20))
            throw Failed("an unknown method returned")
        } catch let error as RayTaskError {
            report("unknown_method", error.message)
        }
        report("alive_after_unknown", try await counter.current())

        // A type declared in a function cannot be found by workers: refused up front.
        distributed actor Local: RayActor {
            init(actorSystem: RayActorSystem, args: Int) { self.actorSystem = actorSystem }
            distributed func ping() -> Int { 1 }
        }
        do {
            _ = try await ray.actor(Local.self, args: 0)
            throw Failed("a function-local actor type was created")
        } catch let error as RayError {
            report("local_type", error.message)
        }

        try await ray.kill(counter)
        do {
            _ = try await counter.add(1)
            throw Failed("a killed actor answered")
        } catch let error as RayTaskError {
            report("after_kill_kind", error.kind.rawValue)
            report("after_kill_message", error.message)
        }
        // Its name is free again.
        let again = try await ray.actor(Counter.self, args: 1, options: ActorOptions(name: "c1"))
        report("name_reused", try await again.current())
    }

    /// 1,000 calls from one caller run in order; three callers (this driver and two tasks on other
    /// workers, holding the handle) interleave but each keeps its order.
    static func ordering(_ ray: Ray) async throws {
        let counter = try await ray.actor(Counter.self, args: 0)
        var refs: [ObjectRef<Int>] = []
        for _ in 0..<1000 { refs.append(try await ray.submit { try await counter.add(1) }) }
        let values = try await ray.get(refs, timeout: .seconds(60))
        report("ordered", values == Array(1...1000) ? 1 : 0)
        report("final", try await counter.current())

        let log = try await ray.actor(EventLog.self, args: 0)
        let tasks = [logFromTask.remote(log, 1, 200), logFromTask.remote(log, 2, 200)]
        for index in 0..<200 { try await log.append(0, index) }
        let pids = try await ray.get(tasks, timeout: .seconds(60))
        let entries = try await log.all()
        var perCaller: [Int: [Int]] = [:]
        for entry in entries { perCaller[entry[0], default: []].append(entry[1]) }
        report("entries", entries.count)
        report("callers_in_order", (0...2).allSatisfy { perCaller[$0] == Array(0..<200) } ? 1 : 0)
        // Interleaved: some caller's run of calls was broken by another's.
        let switches = zip(entries, entries.dropFirst()).filter { $0[0] != $1[0] }.count
        report("caller_switches", switches)
        report("task_pids_distinct", Set(pids).count)
    }

    /// A default actor runs one call at a time; an async actor with maxConcurrency 8 runs 8 at once.
    static func concurrency(_ ray: Ray) async throws {
        let sleeper = try await ray.actor(Sleeper.self, args: 0, options: ActorOptions(maxConcurrency: 8))
        var refs: [ObjectRef<[UInt64]>] = []
        for _ in 0..<8 { refs.append(try await ray.submit { try await sleeper.nap(500) }) }
        let start = ContinuousClock.now
        let intervals = try await ray.get(refs, timeout: .seconds(30))
        report("async_overlap", IntegrationApp.maxOverlap(intervals))
        report("async_ms", Int((ContinuousClock.now - start) / .milliseconds(1)))

        let counter = try await ray.actor(Counter.self, args: 0)
        var naps: [ObjectRef<[UInt64]>] = []
        for _ in 0..<4 { naps.append(try await ray.submit { try await counter.nap(100) }) }
        report("sequential_overlap", IntegrationApp.maxOverlap(try await ray.get(naps, timeout: .seconds(30))))
    }

    /// SIGKILL of the actor's worker: calls in flight and later calls fail with ActorDiedError.
    static func sigkill(_ ray: Ray) async throws {
        let counter = try await ray.actor(Counter.self, args: 0)
        let pid = try await counter.pid()
        let pending: ObjectRef<[UInt64]> = try await ray.submit { try await counter.nap(30_000) }
        try await Task.sleep(for: .milliseconds(200))
        let killed = ContinuousClock.now
        kill(pid, SIGKILL)
        do {
            _ = try await pending.get(timeout: .seconds(20))
            throw Failed("a call to a killed actor returned")
        } catch let error as RayTaskError {
            report("pending_kind", error.kind.rawValue)
            report("pending_message", error.message)
            report("pending_ms", Int((ContinuousClock.now - killed) / .milliseconds(1)))
        }
        do {
            _ = try await counter.add(1)
            throw Failed("a later call to a killed actor returned")
        } catch let error as RayTaskError {
            report("later_kind", error.kind.rawValue)
            report("later_message", error.message)
        }
    }

    /// Creates a detached and a non-detached named actor in namespace "shared", then exits.
    static func owner(_ ray: Ray) async throws {
        let keeper = try await ray.actor(Counter.self, args: 40,
                                         options: ActorOptions(name: "keeper", namespace: "shared", lifetime: .detached))
        let temp = try await ray.actor(Counter.self, args: 0, options: ActorOptions(name: "temp", namespace: "shared"))
        report("keeper_value", try await keeper.add(2))
        report("keeper_pid", try await keeper.pid())
        report("temp_pid", try await temp.pid())
    }

    /// Another driver: finds the detached actor by name, uses and kills it; the non-detached one died
    /// with its owner.
    static func visitor(_ ray: Ray) async throws {
        let keeper = try await ray.getActor(Counter.self, named: "keeper", namespace: "shared")
        report("visitor_value", try await keeper.add(1))
        do {
            _ = try await ray.getActor(Counter.self, named: "temp", namespace: "shared")
            report("temp_found", 1)
        } catch let error as RayError {
            report("temp_found", 0)
            report("temp_error", error.message)
        }
        try await ray.kill(keeper)
        do {
            _ = try await keeper.add(1)
            throw Failed("a killed detached actor answered")
        } catch let error as RayTaskError {
            report("killed_kind", error.kind.rawValue)
        }
        do {
            _ = try await ray.getActor(Counter.self, named: "keeper", namespace: "shared")
            report("keeper_found_after_kill", 1)
        } catch is RayError {
            report("keeper_found_after_kill", 0)
        }
    }
}
