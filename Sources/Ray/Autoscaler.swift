import Foundation
import RayAutoscaling
import RayProtos
import RayRPC
import RayServices

extension Ray {
    /// Asks the autoscaler for capacity up front (Ray's `ray.autoscaler.sdk.request_resources`): the
    /// cluster scales until it could hold all these bundles at once, whatever runs, and keeps the
    /// nodes while the request stands. Each call replaces the previous request; an empty list
    /// withdraws it. Bundles need not fit free resources: this is capacity, not a reservation.
    public func requestResources(bundles: [[String: Double]]) async throws {
        if let problem = ResourceRequest.problem(with: bundles) { throw RayError(.system, "requestResources: \(problem)") }
        var request = Ray_Rpc_InternalKVPutRequest()
        request.key = Data(ResourceRequest.key.utf8)
        request.value = ResourceRequest.encode(bundles)
        request.overwrite = true
        _ = try await gcsCall("record the resource request") {
            try await $0.unary(GCSMethods.kvPut, request, options: CallOptions(timeout: .seconds(10)))
        }
    }

    /// `requestResources(numCPUs: n)`: n bundles of one CPU (Ray's `num_cpus`).
    public func requestResources(numCPUs: Int) async throws {
        guard numCPUs >= 0 else { throw RayError(.system, "requestResources: numCPUs cannot be \(numCPUs)") }
        try await requestResources(bundles: Array(repeating: ["CPU": 1], count: numCPUs))
    }
}
