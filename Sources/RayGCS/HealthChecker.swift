#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayConcurrency
import RayProtos
import RayRPC
import RayServices

/// Checks every alive node's raylet with gRPC's health protocol, as Ray's GCS does: a node whose
/// raylet fails `failureThreshold` checks in a row (each with a deadline) is marked dead, and the
/// change is published like any other.
struct HealthChecker: Sendable {
    struct Settings: Sendable {
        var period: Duration
        var timeout: Duration
        var failureThreshold: Int

        /// From `RAY_health_check_period_ms`, `RAY_health_check_timeout_ms` and
        /// `RAY_health_check_failure_threshold`.
        static func fromConfig(_ config: RayConfig = RayConfig()) -> Settings {
            let period = max(10, config[RayConfig.healthCheckPeriodMilliseconds])
            let timeout = max(10, config[RayConfig.healthCheckTimeoutMilliseconds])
            return Settings(period: .milliseconds(period), timeout: .milliseconds(timeout),
                            failureThreshold: max(1, config[RayConfig.healthCheckFailureThreshold]))
        }
    }

    let state: GCSState
    let settings: Settings
    /// Hears each node marked dead here (its ID, why): the actor manager fails over what was on it.
    var nodeDied: @Sendable (Data, String) async -> Void = { _, _ in }

    /// Runs until cancelled (on the GCS's thread, its checks included: they inherit its executor).
    func run() async {
        var channels: [NodeID: RPCChannel] = [:]
        var failures: [NodeID: Int] = [:]
        while !Task.isCancelled {
            let alive = await state.allNodes().filter { $0.state == .alive }
            let ids = Set(alive.compactMap { try? NodeID(bytes: $0.nodeID) })
            channels = channels.filter { ids.contains($0.key) }
            failures = failures.filter { ids.contains($0.key) }
            await withTaskGroup(of: (NodeID, Bool).self) { group in
                for node in alive {
                    guard let id = try? NodeID(bytes: node.nodeID) else { continue }
                    let channel: RPCChannel
                    if let existing = channels[id] {
                        channel = existing
                    } else if let created = try? RPCChannel(host: node.nodeManagerAddress,
                                                             port: Int(node.nodeManagerPort)) {
                        channels[id] = created
                        channel = created
                    } else {
                        group.addTask { (id, false) }  // an address no channel can reach counts as a failure
                        continue
                    }
                    let timeout = settings.timeout
                    group.addTask {
                        do {
                            let reply = try await channel.unary(
                                HealthMethods.check, Grpc_Health_V1_HealthCheckRequest(),
                                options: CallOptions(timeout: timeout))
                            return (id, reply.status == .serving)
                        } catch {
                            return (id, false)
                        }
                    }
                }
                for await (id, healthy) in group {
                    if healthy {
                        failures[id] = 0
                    } else {
                        failures[id, default: 0] += 1
                        if failures[id]! >= settings.failureThreshold {
                            let reason = "health check failed due to missing too many heartbeats (\(settings.failureThreshold) in a row)"
                            try? await state.unregisterNode(Data(id.bytes), reason: reason)
                            await nodeDied(Data(id.bytes), reason)
                            failures[id] = nil
                            channels[id] = nil
                        }
                    }
                }
            }
            try? await ThreadExecutor.gcs.sleep(for: settings.period)
        }
    }
}
