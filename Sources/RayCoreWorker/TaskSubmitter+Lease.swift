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

extension CoreWorker {
    enum LeaseOutcome: Sendable {
        case granted(Ray_Rpc_RequestWorkerLeaseReply, by: RPCChannel)
        case failed(TaskFailure)
        case notNeeded
    }

    /// One lease, from this node's raylet or the one it spills the request to. A raylet holds the
    /// request until resources free up, answering `canceled` just before the deadline if it could
    /// not grant it: then ask again while `stillWanted`. `waitingAt` hears each raylet it waits at.
    func lease(_ request: Ray_Rpc_RequestWorkerLeaseRequest, stillWanted: @Sendable () -> Bool,
               waitingAt: @Sendable (RPCChannel) -> Void) async -> LeaseOutcome {
        var request = request
        var target = raylet
        /// The node `target` runs on, when it is another node's raylet.
        var targetNode: Data?
        var hops = 0
        while true {
            waitingAt(target)
            let answer: Ray_Rpc_RequestWorkerLeaseReply
            do {
                answer = try await requestLease(request, from: target, on: targetNode)
            } catch {
                if submitter.state.withLock({ $0.shutDown }) { return .notNeeded }
                if target !== raylet {
                    // The node it was spilled to is gone: start over at this node's raylet.
                    target = raylet
                    targetNode = nil
                    request.grantOrReject = false
                    continue
                }
                return .failed(TaskFailure(kind: .connection, type: "", message: "no worker lease from the raylet: \(error)", function: request.schedulingClassName))
            }
            if answer.unschedulable || answer.infeasible {
                let kind: RayError.Kind = answer.placementGroupRemoved ? .taskPlacementGroupRemoved : .infeasible
                return .failed(TaskFailure(kind: kind, type: "", message: answer.message, function: request.schedulingClassName))
            }
            if answer.hasRetryAtRayletAddress {
                hops += 1
                if hops > 100 { try? await ThreadExecutor.coreWorker.sleep(for: .milliseconds(10)) }
                do {
                    target = try channels.channel(for: answer.retryAtRayletAddress)
                    targetNode = answer.retryAtRayletAddress.nodeID == address.nodeID ? nil : answer.retryAtRayletAddress.nodeID
                } catch {
                    target = raylet
                    targetNode = nil
                    continue
                }
                request.grantOrReject = true
                continue
            }
            if answer.rejected {
                target = raylet
                targetNode = nil
                request.grantOrReject = false
                try? await ThreadExecutor.coreWorker.sleep(for: .milliseconds(5))
                continue
            }
            if !answer.canceled { return .granted(answer, by: target) }
            if !stillWanted() { return .notNeeded }
        }
    }

    /// A lease request waits at a raylet for up to a minute: one held at another node's raylet is
    /// cancelled when the GCS says that node died (a cut-off host closes no connection), so the
    /// request starts over here at once.
    private func requestLease(_ request: Ray_Rpc_RequestWorkerLeaseRequest, from target: RPCChannel,
                              on node: Data?) async throws(RPCError) -> Ray_Rpc_RequestWorkerLeaseReply {
        let options = CallOptions(timeout: .seconds(60))
        guard let node else { return try await target.unary(NodeManagerMethods.requestWorkerLease, request, options: options) }
        let id = callsToNodes.start(on: node)
        let result = await withCheckedContinuation { (done: CheckedContinuation<Result<Ray_Rpc_RequestWorkerLeaseReply, RPCError>, Never>) in
            let handle = target.unary(NodeManagerMethods.requestWorkerLease, request, options: options) { done.resume(returning: $0) }
            callsToNodes.attach(handle, to: id, on: node)
        }
        callsToNodes.remove(id, node: node)
        return try result.get()
    }
}
