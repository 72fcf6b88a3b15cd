#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `requestResources(bundles:)`: bundles the cluster should be able to hold at once, kept in the GCS's
/// internal KV (each request replaces the one before; an empty list withdraws it), read by the
/// autoscaler on every round.
public enum ResourceRequest {
    public static let key = "__autoscaler_resource_request"
    /// Where the autoscaler leaves its view for `ray status` (Ray's `DEBUG_AUTOSCALING_STATUS`).
    public static let statusKey = "__autoscaling_status"

    /// What is wrong with a request, if anything.
    public static func problem(with bundles: [[String: Double]]) -> String? {
        for (index, bundle) in bundles.enumerated() {
            if let bad = bundle.first(where: { !$0.value.isFinite || $0.value < 0 }) {
                return "bundle \(index): \(bad.key) cannot be \(bad.value)"
            }
            if let bad = bundle.keys.first(where: { $0.isEmpty }) { return "bundle \(index): a resource needs a name, got \"\(bad)\"" }
        }
        return nil
    }

    public static func encode(_ bundles: [[String: Double]]) -> Data {
        (try? JSONEncoder().encode(bundles.map { $0.filter { $0.value > 0 } })) ?? Data("[]".utf8)
    }

    public static func decode(_ data: Data) -> [[String: Double]] {
        (try? JSONDecoder().decode([[String: Double]].self, from: data)) ?? []
    }
}
