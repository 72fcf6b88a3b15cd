import Synchronization

/// Bytes that may be outstanding at once, shared by many tasks (the object manager's
/// `object_manager_max_bytes_in_flight`): `acquire` waits, first come first served, until its bytes
/// fit; `release` gives them back. A request larger than the whole budget is granted when nothing
/// else holds any, so it waits but never forever. A waiter that is cancelled leaves the queue and
/// throws `CancellationError`.
public final class ByteBudget: Sendable {
    public let limit: Int

    private struct Waiter {
        let id: UInt64
        let bytes: Int
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var used = 0
        var peak = 0
        var nextID: UInt64 = 0
        var waiters: [Waiter] = []

        func fits(_ bytes: Int, limit: Int) -> Bool { used == 0 || used + bytes <= limit }

        mutating func take(_ bytes: Int) {
            used += bytes
            peak = max(peak, used)
        }
    }

    private let state = Mutex(State())

    public init(limit: Int) { self.limit = max(1, limit) }

    /// Bytes held now, the most ever held at once, and how many wait.
    public var inUse: Int { state.withLock { $0.used } }
    public var peak: Int { state.withLock { $0.peak } }
    public var waiting: Int { state.withLock { $0.waiters.count } }

    public func acquire(_ bytes: Int) async throws {
        let bytes = max(0, bytes)
        let id = state.withLock { state -> UInt64? in
            if state.waiters.isEmpty, state.fits(bytes, limit: limit) {
                state.take(bytes)
                return nil
            }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let cancelled = state.withLock { state -> Bool in
                    if Task.isCancelled { return true }
                    state.waiters.append(Waiter(id: id, bytes: bytes, continuation: continuation))
                    return false
                }
                if cancelled { continuation.resume(throwing: CancellationError()) }
                // A release may have come between the first look and the enqueue.
                grant()
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
            grant()  // the ones behind it may fit now
        }
    }

    public func release(_ bytes: Int) {
        state.withLock { $0.used = max(0, $0.used - max(0, bytes)) }
        grant()
    }

    /// Resumes the waiters at the head of the queue that fit, in order.
    private func grant() {
        let granted = state.withLock { state -> [Waiter] in
            var granted: [Waiter] = []
            while let first = state.waiters.first, state.fits(first.bytes, limit: limit) {
                state.take(first.bytes)
                granted.append(state.waiters.removeFirst())
            }
            return granted
        }
        for waiter in granted { waiter.continuation.resume() }
    }
}
