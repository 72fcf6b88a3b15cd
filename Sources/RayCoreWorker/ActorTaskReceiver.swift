#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization

/// Orders the calls an actor's worker receives: each caller's calls start in the order the caller
/// numbered them (whatever order they arrive in), and at most `maxConcurrency` run at once; calls of
/// different callers interleave in arrival order. With `maxConcurrency` 1 a call runs to completion
/// before the next starts, as Ray's (non-async) actors do, even across `await`s in the method.
final class ActorTaskReceiver: Sendable {
    private struct State {
        var maxConcurrency = 1
        var running = 0
        /// Calls whose turn came, waiting for a free slot, first come first served.
        var slotWaiters: [CheckedContinuation<Void, Never>] = []
        var slotHead = 0
        /// The next sequence number of each caller (by worker ID).
        var next: [Data: Int64] = [:]
        /// Calls that arrived before their turn, by caller and sequence number.
        var early: [Data: [Int64: CheckedContinuation<Void, Never>]] = [:]
    }
    private let state = Mutex(State())

    func configure(maxConcurrency: Int) {
        state.withLock { $0.maxConcurrency = max(1, maxConcurrency) }
    }

    /// One call at a time: a caller's batch can simply run in its order.
    var isSequential: Bool { state.withLock { $0.maxConcurrency == 1 } }

    /// Returns when the call may start: after the caller's earlier calls started, with a slot taken.
    /// Pair with ``finish()``.
    func admit(caller: Data, sequence: Int64) async {
        let myTurn = state.withLock { s -> Bool in sequence <= s.next[caller, default: 0] }
        if !myTurn {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if sequence <= s.next[caller, default: 0] { return true }
                    s.early[caller, default: [:]][sequence] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        }
        let slot = state.withLock { s -> Bool in
            guard s.running < s.maxConcurrency else { return false }
            s.running += 1
            return true
        }
        if !slot {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.running < s.maxConcurrency {
                        s.running += 1
                        return true
                    }
                    s.slotWaiters.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
        // Started: the caller's next call may queue for a slot now.
        let wake = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if sequence >= s.next[caller, default: 0] { s.next[caller] = sequence + 1 }
            let next = s.early[caller]?.removeValue(forKey: sequence + 1)
            if s.early[caller]?.isEmpty == true { s.early[caller] = nil }
            return next
        }
        wake?.resume()
    }

    /// The call finished: its slot goes to the first waiter.
    func finish() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard s.slotHead < s.slotWaiters.count else {
                s.running -= 1
                return nil
            }
            let waiter = s.slotWaiters[s.slotHead]
            s.slotHead += 1
            if s.slotHead == s.slotWaiters.count {
                s.slotWaiters.removeAll(keepingCapacity: true)
                s.slotHead = 0
            }
            return waiter  // the slot passes to it: `running` stays
        }
        waiter?.resume()
    }
}
