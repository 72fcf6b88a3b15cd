import Synchronization

/// Bounds the bytes a stream has queued in the shim but not yet handed to gRPC: a writer waits while the
/// window is full (one message is always allowed), and each WRITE_DONE event opens it again.
final class OutboundWindow: Sendable {
    private struct State {
        var inFlight = 0
        var closed: RPCError?
        var waiters: [(Int, CheckedContinuation<Void, any Error>)] = []
    }

    private let state = Mutex(State())
    let limit: Int

    init(limit: Int) { self.limit = max(1, limit) }

    /// Waits until `bytes` more fit (or nothing is in flight), then counts them in.
    func reserve(_ bytes: Int) async throws {
        let ready = try state.withLock { s throws(RPCError) -> Bool in
            if let closed = s.closed { throw closed }
            if s.inFlight == 0 || s.inFlight + bytes <= limit {
                s.inFlight += bytes
                return true
            }
            return false
        }
        if ready { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            enum Now { case go, fail(RPCError), parked }
            let now = state.withLock { s -> Now in
                if let closed = s.closed { return .fail(closed) }
                if s.inFlight == 0 || s.inFlight + bytes <= limit {
                    s.inFlight += bytes
                    return .go
                }
                s.waiters.append((bytes, continuation))
                return .parked
            }
            switch now {
            case .go: continuation.resume()
            case .fail(let error): continuation.resume(throwing: error)
            case .parked: break
            }
        }
    }

    /// A write left the queue (gRPC thread).
    func completed(_ bytes: Int) {
        let ready = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.inFlight = max(0, s.inFlight - bytes)
            var ready: [CheckedContinuation<Void, any Error>] = []
            while let (size, continuation) = s.waiters.first, s.inFlight == 0 || s.inFlight + size <= limit {
                s.waiters.removeFirst()
                s.inFlight += size
                ready.append(continuation)
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// Nothing more can be written: waiting and later writers get `error`.
    func close(_ error: RPCError) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            if s.closed == nil { s.closed = error }
            defer { s.waiters.removeAll() }
            return s.waiters.map(\.1)
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }
}
