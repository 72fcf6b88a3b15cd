// `make demo`: a Ray program on an embedded local cluster. The same executable is the driver (main)
// and, re-launched by the raylet, the workers that run its remote functions.
import Distributed
import Foundation
import Ray

/// Counts random points inside the unit circle (CPU-bound work worth spreading over cores).
func piSamples(_ samples: Int, seed: UInt64) -> Int {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var inside = 0
    for _ in 0..<samples {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        let x = Double(state & 0xFFFF_FFFF) / Double(UInt32.max)
        let y = Double(state >> 32) / Double(UInt32.max)
        if x * x + y * y <= 1 { inside += 1 }
    }
    return inside
}

let square = RemoteFunction("square") { (x: Int) in x * x }
let add = RemoteFunction("add") { (a: Int, b: Int) in a + b }
let sum = RemoteFunction("sum") { (values: [Double]) in values.reduce(0, +) }
let estimatePi = RemoteFunction("estimatePi") { (samples: Int, seed: UInt64) in piSamples(samples, seed: seed) }

/// An actor: state that lives in one worker process; its calls run there, one at a time, in order.
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
    distributed func pid() -> Int32 { getpid() }
}

/// A task that receives an actor handle and calls the actor.
let addFromTask = RemoteFunction("addFromTask") { (counter: Counter, n: Int) async throws -> Int in
    try await counter.add(n)
}

@main
struct Demo: RayApplication {
    static let remoteFunctions: [any AnyRemoteFunction] = [square, add, sum, estimatePi, addFromTask]

    static func main(ray: Ray) async throws {
        print("swift-ray demo: an embedded cluster with \(Int(ray.clusterResources["CPU"] ?? 0)) CPUs")

        // Tasks: .remote returns ObjectRefs at once; get waits for the values.
        let squares = try await ray.get((1...10).map { square.remote($0) })
        print("tasks:       squares of 1...10 = \(squares)")

        // Refs as arguments: the second task runs once the first result exists.
        let total = try await add.remote(square.remote(3), square.remote(4)).get()
        print("refs as args: 3² + 4² = \(total)")

        // Objects: a 40 MB put lives in the node's shared-memory store; a task reads it in place.
        let values = try await ray.put([Double](repeating: 0.5, count: 5_000_000))
        print("objects:     sum of 5,000,000 × 0.5 in a task = \(try await sum.remote(values).get())")

        // Actors: a distributed actor created on a worker; calls are compiler-checked and ordered.
        let counter = try await ray.actor(Counter.self, args: 10, options: ActorOptions(name: "counter"))
        let afterAdd = try await counter.add(5)
        var refs: [ObjectRef<Int>] = []
        for _ in 0..<100 { refs.append(try await ray.submit { try await counter.add(1) }) }  // pipelined
        let last = try await ray.get(refs).last ?? 0
        let fromTask = try await addFromTask.remote(counter, 1000).get()
        let found = try await ray.getActor(Counter.self, named: "counter")
        print("actors:      Counter(10) in pid \(try await counter.pid()) (driver \(getpid())): add(5) = \(afterAdd), " +
              "100 pipelined add(1) end at \(last), a task adds 1000 = \(fromTask), found by name: \(try await found.add(0))")
        try await ray.kill(counter)

        // Parallel speed-up: the same Monte Carlo work, in this process alone, then as tasks.
        let chunks = 8
        let samples = 3_000_000
        let serialStart = ContinuousClock.now
        var inside = 0
        for chunk in 0..<chunks { inside += piSamples(samples, seed: UInt64(chunk + 1)) }
        let serial = ContinuousClock.now - serialStart
        let parallelStart = ContinuousClock.now
        let parallelInside = try await ray.get((0..<chunks).map { estimatePi.remote(samples, UInt64($0 + 1)) })
            .reduce(0, +)
        let parallel = ContinuousClock.now - parallelStart
        precondition(parallelInside == inside, "the tasks computed what the driver did")
        let pi = 4 * Double(inside) / Double(chunks * samples)
        print("speed-up:    π ≈ \(String(format: "%.5f", pi)) from \(chunks * samples) samples: " +
              "\(milliseconds(serial)) ms in the driver, \(milliseconds(parallel)) ms as \(chunks) tasks " +
              "(\(String(format: "%.2f", Double(milliseconds(serial)) / Double(max(1, milliseconds(parallel)))))×)")
    }

    static func milliseconds(_ duration: Duration) -> Int { Int(duration / .milliseconds(1)) }
}
