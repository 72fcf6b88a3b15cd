// Autoscaler scenarios on a head started with `ray start --head --autoscaling-config` (Tests/RayTests/
// AutoscalerTests.swift writes the cluster config).
import Foundation
@_spi(RayTesting) import Ray

enum AutoscalingScenarios {
    static func report(_ key: String, _ value: some CustomStringConvertible) { IntegrationApp.report(key, value) }

    static func run(_ scenario: String, _ arguments: [String], ray: Ray) async throws -> Bool {
        switch scenario {
        case "as-accel":
            // No node has `accel` yet: the autoscaler starts one of the type that has it.
            let start = ContinuousClock.now
            let node = try await whereAmI.options(numCPUs: 1, resources: ["accel": 1]).remote().get(timeout: .seconds(120))
            report("scale_up_ms", (ContinuousClock.now - start) / .milliseconds(1))
            report("accel_node", node)
            report("driver_node", Ray.currentNodeID?.hex ?? "")
        case "as-request":
            let count = arguments.dropFirst().first.flatMap { Int($0) } ?? 0
            try await ray.requestResources(bundles: Array(repeating: ["CPU": 1], count: count))
            report("requested", count)
            // Bad input is refused with a clear error.
            do {
                try await ray.requestResources(bundles: [["CPU": -1]])
                report("negative_refused", 0)
            } catch {
                report("negative_refused", "\(error)".contains("cannot be -1") ? 1 : 0)
            }
        case "as-request-broken":
            try await ray.requestResources(bundles: [["broken": 1]])
            report("requested", 1)
        case "as-burst":
            let count = arguments.dropFirst().first.flatMap { Int($0) } ?? 50
            let refs = (0..<count).map { _ in sleepThenWhere.options(numCPUs: 1).remote(400) }
            var nodes: Set<String> = []
            for ref in refs { nodes.insert(try await ref.get(timeout: .seconds(180))) }
            report("burst_done", refs.count)
            report("burst_nodes", nodes.count)
        default:
            return false
        }
        return true
    }
}
