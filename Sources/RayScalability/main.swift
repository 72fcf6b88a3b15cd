// `ray-scalability`: Ray's single-node scalability envelope (release/benchmarks/single_node, its names
// and sizes), plus the multi-node broadcast. Build in release; run on an embedded cluster (no
// RAY_ADDRESS) or, for broadcast_1gib_to_3_nodes_s, as a driver of a cluster of four nodes
// (scripts/multinode_benchmark.sh broadcast). Prints `name: value` lines; an argument picks the
// figures whose names contain it.
//
//   10000_args_to_one_task_s        one task given 10,000 lists of 10,000 ints (each its own object:
//                                   Swift has no variadic remote call, so one array of refs the task gets)
//   3000_returns_from_one_task_s    one task returning 3,000 lists of 10,000 ints, each got and checked
//   get_10000_objects_s             10,000 puts of a list of 10,000 ints, one `get` of all, checked;
//                                   then the same as zero-copy buffers (Ray's numpy half)
//   1000000_tasks_queued_s          one blocked task per CPU, 1,000,000 tasks queued behind them, the
//                                   blockers released, every result got one by one; with peak RSS
//   broadcast_1gib_to_3_nodes_s     a 1 GiB object put here, read by a task on each of three other nodes
@preconcurrency import Glibc
import Foundation
import Ray

let sumArgs = RemoteFunction("sumArgs") { (refs: [ObjectRef<[Int]>]) async throws -> Int in
    try await refs.get().reduce(0) { $0 + $1.reduce(0, +) }
}
let manyReturns = ManyReturnFunction("manyReturns") { (n: Int) in (0..<n).map { _ in Array(0..<10_000) } }
/// Holds a CPU until `path` exists (Ray's test blocks on a semaphore actor).
let block = RemoteFunction("block") { (path: String) async throws -> Bool in
    while !FileManager.default.fileExists(atPath: path) { try await Task.sleep(for: .milliseconds(5)) }
    return true
}
let noop = RemoteFunction("noop") { () -> Bool in true }
/// The length of the object `refs[0]` names, read in place in this node's store (Ray's task gets a
/// numpy array zero-copy; a Swift argument is decoded into a fresh array, so the ref is passed inside).
let byteCount = RemoteFunction("byteCount") { (refs: [ObjectRef<[UInt8]>]) async throws -> Int in
    try await refs[0].getBuffer(timeout: .seconds(600)).count
}

/// Peak resident set of a process in KiB (VmHWM), 0 if unreadable.
func peakRSSKiB(_ pid: pid_t) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

@main
struct Scalability: RayApplication {
    static let remoteFunctions: [any AnyRemoteFunction] = [sumArgs, manyReturns, block, noop, byteCount]

    static func main(ray: Ray) async throws {
        let only = CommandLine.arguments.dropFirst().first
        func wanted(_ name: String) -> Bool { only == nil || name.contains(only!) }
        func report(_ name: String, _ value: Double) { print("\(name): \(String(format: "%.3f", value))"); fflush(stdout) }

        if wanted("10000_args") {
            let start = ContinuousClock.now
            var refs: [ObjectRef<[Int]>] = []
            for _ in 0..<10_000 { refs.append(try await ray.put([Int](repeating: 1, count: 10_000))) }
            let sum = try await sumArgs.remote(refs).get(timeout: .seconds(600))
            guard sum == 10_000 * 10_000 else { throw RayError(.system, "wrong sum \(sum)") }
            report("10000_args_to_one_task_s", seconds(ContinuousClock.now - start))
        }
        if wanted("3000_returns") {
            let start = ContinuousClock.now
            let refs = manyReturns.remote(3000, numReturns: 3000)
            let expected = Array(0..<10_000)
            for ref in refs {
                guard try await ref.get(timeout: .seconds(600)) == expected else { throw RayError(.system, "wrong list") }
            }
            report("3000_returns_from_one_task_s", seconds(ContinuousClock.now - start))
        }
        if wanted("get_10000") {
            let start = ContinuousClock.now
            let expected = Array(0..<10_000)
            var refs: [ObjectRef<[Int]>] = []
            for _ in 0..<10_000 { refs.append(try await ray.put(expected)) }
            let values = try await ray.get(refs, timeout: .seconds(600))
            guard values.count == 10_000, values.allSatisfy({ $0 == expected }) else { throw RayError(.system, "wrong lists") }
            refs = []
            for _ in 0..<10_000 { refs.append(try await ray.put(expected)) }
            var buffers: [ObjectBuffer<Int>] = []
            for ref in refs { buffers.append(try await ref.getBuffer(timeout: .seconds(600))) }
            guard buffers.allSatisfy({ $0.elementsEqual(expected) }) else { throw RayError(.system, "wrong buffers") }
            report("get_10000_objects_s", seconds(ContinuousClock.now - start))
        }
        if wanted("tasks_queued") {
            let n = Int(ProcessInfo.processInfo.environment["SCALABILITY_TASKS"] ?? "") ?? 1_000_000
            let gate = NSTemporaryDirectory() + "ray-scalability-gate-\(getpid())"
            defer { try? FileManager.default.removeItem(atPath: gate) }
            let cpus = Int(ray.clusterResources["CPU"] ?? 1)
            let driverBefore = peakRSSKiB(getpid())
            let start = ContinuousClock.now
            let blockers = (0..<cpus).map { _ in block.remote(gate) }
            var refs: [ObjectRef<Bool>] = []
            refs.reserveCapacity(n)
            for _ in 0..<n { refs.append(noop.remote()) }
            let submitted = ContinuousClock.now - start
            let driverQueued = peakRSSKiB(getpid())
            guard FileManager.default.createFile(atPath: gate, contents: nil) else { throw RayError(.system, "cannot create \(gate)") }
            for ref in refs { guard try await ref.get(timeout: .seconds(600)) else { throw RayError(.system, "wrong result") } }
            guard try await ray.get(blockers, timeout: .seconds(60)).allSatisfy({ $0 }) else { throw RayError(.system, "a blocker failed") }
            let label = n == 1_000_000 ? "1000000" : "\(n)"
            report("\(label)_tasks_queued_s", seconds(ContinuousClock.now - start))
            report("\(label)_tasks_submit_s", seconds(submitted))
            report("\(label)_tasks_driver_peak_rss_mib", Double(peakRSSKiB(getpid())) / 1024)
            // The embedded raylet is in this process: this is driver and raylet together.
            report("\(label)_tasks_bytes_per_queued_task", Double(max(0, driverQueued - driverBefore)) * 1024 / Double(n))
        }
        if wanted("broadcast") {
            let others = try await ray.nodes().filter { $0.isAlive && $0.id != ray.nodeID }
            if others.count >= 3 {
                let big = try await ray.put([UInt8](repeating: 1, count: 1 << 30))
                let start = ContinuousClock.now
                let fanOut = Int(ProcessInfo.processInfo.environment["BROADCAST_NODES"] ?? "") ?? 3
                let counts = try await ray.get(others.prefix(fanOut).map {
                    byteCount.options(numCPUs: 0, scheduling: .nodeAffinity($0.id, soft: false)).remote([big])
                }, timeout: .seconds(600))
                guard counts.allSatisfy({ $0 == 1 << 30 }) else { throw RayError(.system, "wrong sizes \(counts)") }
                report("broadcast_1gib_to_3_nodes_s", seconds(ContinuousClock.now - start))
            } else if only != nil {
                throw RayError(.system, "broadcast_1gib_to_3_nodes_s needs a cluster of four nodes (RAY_ADDRESS)")
            }
        }
    }
}
