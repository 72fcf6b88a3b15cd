// `ray-multinode-benchmark`: figures of a cluster of several nodes (`scripts/multinode_benchmark.sh`
// starts one with `ray start` at 127.0.0.1, 127.0.0.2, … and runs this as the driver on the node at
// RAY_NODE_IP_ADDRESS). Build in release. Prints `name: value` lines; `--json FILE` writes them.
//
//   cross_node_transfer_1gib_gbps: a 1 GiB object made by a task on another node, read (`getBuffer`,
//   in place) by the driver: the pull alone, as Ray's `ray.get` of a numpy array from another node.
//   The first transfer and the best and median of the rest are printed.
import Foundation
import Ray

/// `bytes` bytes made where this runs (zeros, as numpy.zeros), returned as one object.
let makeBytes = RemoteFunction("makeBytes") { (bytes: Int) -> [UInt8] in [UInt8](repeating: 0, count: bytes) }
let nodeOf = RemoteFunction("nodeOf") { () -> String in Ray.currentNodeID?.hex ?? "" }

@main
struct MultiNodeBenchmark: RayApplication {
    static let remoteFunctions: [any AnyRemoteFunction] = [makeBytes, nodeOf]

    static func main(ray: Ray) async throws {
        let arguments = CommandLine.arguments.dropFirst()
        let transfers = arguments.first.flatMap(Int.init) ?? 6
        let json = arguments.firstIndex(of: "--json").map { arguments[$0 + 1] }
        let nodes = try await ray.nodes().filter(\.isAlive)
        guard let other = nodes.first(where: { $0.id != ray.nodeID }) else {
            throw RayError(.system, "ray-multinode-benchmark needs a cluster of two nodes or more (RAY_ADDRESS)")
        }
        let size = 1 << 30
        var seconds: [Double] = []
        for _ in 0..<transfers {
            let made = makeBytes.options(numCPUs: 0, scheduling: .nodeAffinity(other.id, soft: false)).remote(size)
            let (ready, _) = await ray.wait([made], numReturns: 1, timeout: .seconds(120))
            guard ready.count == 1 else { throw RayError(.getTimeout, "the 1 GiB object was not made within 120 s") }
            let start = ContinuousClock.now
            let buffer = try await made.getBuffer(timeout: .seconds(120))
            let elapsed = ContinuousClock.now - start
            guard buffer.count == size else { throw RayError(.system, "read \(buffer.count) bytes of \(size)") }
            seconds.append(Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds))
        }
        let gbps = seconds.map { Double(size) / $0 / 1e9 }
        let rest = gbps.dropFirst().sorted()
        var figures: [String: Double] = ["cross_node_transfer_1gib_gbps_first": gbps[0]]
        if !rest.isEmpty {
            figures["cross_node_transfer_1gib_gbps"] = rest[rest.count / 2]
            figures["cross_node_transfer_1gib_gbps_best"] = rest.last!
        }
        for (name, value) in figures.sorted(by: { $0.key < $1.key }) { print("\(name): \(String(format: "%.2f", value))") }
        print("transfers_gbps: \(gbps.map { String(format: "%.2f", $0) }.joined(separator: " "))")
        if let json {
            let data = try JSONSerialization.data(withJSONObject: figures, options: [.sortedKeys])
            try data.write(to: URL(fileURLWithPath: json))
        }
    }
}
