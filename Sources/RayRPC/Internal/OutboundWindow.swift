import Synchronization

/// Bounds the bytes a stream has queued in the shim but not yet handed to gRPC: a writer waits while the
/// window is full (one message is always allowed), and each WRITE_DONE event opens it again. A writer
/// the window never stops yields every ``yieldEvery`` messages, so a handler writing many small
/// messages does not keep its executor (shared with the server's other handlers) to itself.
final class OutboundWindow: Sendable {
    private struct State {
        var inFlight = 0
        var closed: RPCError?
        /// A write failed: the call is ending, and its status (``close(_:)``) is what writers get.
        var broken = false
        var waiters: [(Int, CheckedContinuation<Void, any Error>)] = []
        var closeWaiters: [CheckedContinuation<RPCError, Never>] = []
        /// Messages admitted since the writer last suspended.
        var admittedInARow = 0
    }

    static let yieldEvery = 32

    private let state = Mutex(State())
    let limit: Int

    init(limit: Int) { self.limit = max(1, limit) }

    /// Requires the state lock: whether `bytes` more may go now (never once a write failed).
    private func fits(_ bytes: Int, _ s: State) -> Bool {
        !s.broken && (s.inFlight == 0 || s.inFlight + bytes <= limit)
    }

    /// Requires the state lock: counts `bytes` in if they fit now (true), throws if the window closed.
    private func admit(_ bytes: Int, _ s: inout State) throws(RPCError) -> Bool {
        if let closed = s.closed { throw closed }
        guard fits(bytes, s) else { return false }
        s.inFlight += bytes
        return true
    }

    /// Waits until `bytes` more fit (or nothing is in flight), then counts them in.
    func reserve(_ bytes: Int) async throws {
        // Most writes fit at once: answer without making a continuation.
        let (admitted, yield) = try state.withLock { s throws(RPCError) -> (Bool, Bool) in
            guard try admit(bytes, &s) else { return (false, false) }
            s.admittedInARow += 1
            guard s.admittedInARow >= Self.yieldEvery else { return (true, false) }
            s.admittedInARow = 0
            return (true, true)
        }
        if admitted {
            if yield { await Task.yield() }
            return
        }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome = state.withLock { s -> Result<Bool, RPCError> in
                let result = Result { () throws(RPCError) in try admit(bytes, &s) }
                if case .success(false) = result {
                    s.waiters.append((bytes, continuation))
                    s.admittedInARow = 0
                }
                return result
            }
            switch outcome {
            case .success(true): continuation.resume()
            case .success(false): break  // parked; completed(_:) or close(_:) resumes it
            case .failure(let error): continuation.resume(throwing: error)
            }
        }
    }

    /// A write left the queue (gRPC thread).
    func completed(_ bytes: Int) {
        let ready = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.inFlight = max(0, s.inFlight - bytes)
            var ready: [CheckedContinuation<Void, any Error>] = []
            while let (size, continuation) = s.waiters.first, fits(size, s) {
                s.waiters.removeFirst()
                s.inFlight += size
                ready.append(continuation)
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// A write failed (gRPC thread): the call is ending but its status has not come yet. Writers wait
    /// for ``close(_:)`` and get the status it brings, not a bare "broken" that would hide the
    /// server's answer.
    func breakOff(_ bytes: Int) {
        state.withLock { s in
            s.inFlight = max(0, s.inFlight - bytes)
            s.broken = true
        }
    }

    /// Nothing more can be written: waiting and later writers get `error`.
    func close(_ error: RPCError) {
        let (waiters, closeWaiters, reason) = state.withLock { s in
            if s.closed == nil { s.closed = error }
            defer {
                s.waiters.removeAll()
                s.closeWaiters.removeAll()
            }
            return (s.waiters.map(\.1), s.closeWaiters, s.closed ?? error)
        }
        for waiter in waiters { waiter.resume(throwing: reason) }
        for waiter in closeWaiters { waiter.resume(returning: reason) }
    }

    /// Waits until the window closes (the call is over) and returns why.
    func closed() async -> RPCError {
        await withCheckedContinuation { (continuation: CheckedContinuation<RPCError, Never>) in
            let reason = state.withLock { s -> RPCError? in
                if s.closed == nil { s.closeWaiters.append(continuation) }
                return s.closed
            }
            if let reason { continuation.resume(returning: reason) }
        }
    }
}
