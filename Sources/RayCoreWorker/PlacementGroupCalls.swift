#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import RayCommon
import RayConcurrency
import RayProtos
import RayRPC
import RayServices
import Synchronization

/// How a call ended, for whoever waits on it: nil when it succeeded, else the GCS's refusal or the
/// failure to reach it.
final class CallOutcome: Sendable {
    private struct State {
        var result: RPCError?? = nil
        var waiters: [CheckedContinuation<RPCError?, Never>] = []
    }
    private let state = Mutex(State())

    func finish(_ result: RPCError?) {
        let waiters = state.withLock { s -> [CheckedContinuation<RPCError?, Never>] in
            guard s.result == nil else { return [] }
            s.result = .some(result)
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume(returning: result) }
    }

    var value: RPCError? {
        get async {
            await withCheckedContinuation { continuation in
                let done = state.withLock { s -> RPCError?? in
                    if let result = s.result { return .some(result) }
                    s.waiters.append(continuation)
                    return nil
                }
                if let done { continuation.resume(returning: done) }
            }
        }
    }
}

/// This process's placement-group registrations and removals, sent to the GCS in order, one call
/// at a time: what queues up while a call is out goes in the next one, as one call for a run of
/// registrations or of removals. So a program that makes or removes groups one after another
/// costs the GCS a few calls, not one each, and a removal never overtakes its group's registration.
final class PlacementGroupCalls: Sendable {
    enum Operation: Sendable {
        case create(Ray_Rpc_PlacementGroupTableData)
        /// After: the group's registration (skipped if the GCS refused it).
        case remove(Data, after: CallOutcome?)

        var isCreate: Bool { if case .create = self { true } else { false } }
    }

    private struct State {
        var queue: [(Operation, CallOutcome)] = []
        var sending = false
    }
    private let state = Mutex(State())
    static let maxBatch = 1000

    /// Queues `operation`; its outcome says when the GCS answered.
    func enqueue(_ operation: Operation, on channel: RPCChannel) -> CallOutcome {
        let outcome = CallOutcome()
        let start = state.withLock { s -> Bool in
            s.queue.append((operation, outcome))
            if s.sending { return false }
            s.sending = true
            return true
        }
        if start { Task(executorPreference: ThreadExecutor.coreWorker) { await self.send(on: channel) } }
        return outcome
    }

    private func send(on channel: RPCChannel) async {
        while true {
            let run = state.withLock { s -> [(Operation, CallOutcome)]? in
                guard let first = s.queue.first else {
                    s.sending = false
                    return nil
                }
                let count = min(Self.maxBatch, s.queue.prefix { $0.0.isCreate == first.0.isCreate }.count)
                defer { s.queue.removeFirst(count) }
                return Array(s.queue.prefix(count))
            }
            guard let run else { return }
            let result: RPCError?
            if run[0].0.isCreate {
                var request = Ray_Rpc_CreatePlacementGroupRequest()
                for case (.create(let spec), _) in run {
                    if request.hasPlacementGroupSpec { request.moreSpecs.append(spec) } else { request.placementGroupSpec = spec }
                }
                result = await Self.call { _ = try await channel.unary(GCSMethods.createPlacementGroup, request, options: CallOptions(timeout: .seconds(30), waitForReady: true)) }
            } else {
                var ids: [Data] = []
                for case (.remove(let id, let after), _) in run {
                    // A group whose registration was refused is not there to remove.
                    if let after, await after.value != nil { continue }
                    ids.append(id)
                }
                if let first = ids.first {
                    var request = Ray_Rpc_RemovePlacementGroupRequest()
                    request.placementGroupID = first
                    request.morePlacementGroupIds = Array(ids.dropFirst())
                    result = await Self.call { _ = try await channel.unary(GCSMethods.removePlacementGroup, request, options: CallOptions(timeout: .seconds(30), waitForReady: true)) }
                    if let result { fputs("ray: removing \(ids.count) placement group(s) failed: \(result)\n", stderr) }
                } else {
                    result = nil
                }
            }
            for (_, outcome) in run { outcome.finish(result) }
        }
    }

    private static func call(_ body: () async throws -> Void) async -> RPCError? {
        do {
            try await body()
            return nil
        } catch let error as RPCError {
            return error
        } catch {
            return RPCError(code: .internalError, message: "\(error)")
        }
    }
}
