import Synchronization

/// Messages arriving on a stream, with backpressure: a read is requested from the shim only while fewer
/// than `capacity` messages wait to be consumed, so a slow consumer stops gRPC's flow-control window
/// and in turn the sender. Callbacks from gRPC threads never block here.
final class InboundBuffer: Sendable {
    private struct State {
        var messages: [[UInt8]] = []
        var head = 0
        var readInFlight = false
        var readsEnded = false
        var finished = false
        var failure: RPCError?
        var waiter: CheckedContinuation<[UInt8]?, any Error>?
        var buffered: Int { messages.count - head }

        mutating func pop() -> [UInt8] {
            let message = messages[head]
            messages[head] = []
            head += 1
            if head > 64, head * 2 > messages.count {
                messages.removeFirst(head)
                head = 0
            }
            return message
        }
    }

    private let state = Mutex(State())
    private let capacity: Int
    /// Asks the shim for one more message; false when the stream can deliver no more.
    private let requestRead: @Sendable () -> Bool

    init(capacity: Int, requestRead: @escaping @Sendable () -> Bool) {
        self.capacity = max(1, capacity)
        self.requestRead = requestRead
    }

    /// Requires the state lock: claims a read if one should be started.
    private func claimRead(_ s: inout State) -> Bool {
        guard !s.readInFlight, !s.readsEnded, !s.finished, s.buffered < capacity else { return false }
        s.readInFlight = true
        return true
    }

    private func startRead() {
        if !requestRead() {
            state.withLock { $0.readInFlight = false; $0.readsEnded = true }
        }
    }

    /// Seeds the buffer with a message that arrived with the call and starts reading ahead.
    func prime(with message: [UInt8]?, moreMayFollow: Bool) {
        let read = state.withLock { s -> Bool in
            if let message { s.messages.append(message) }
            if !moreMayFollow { s.readsEnded = true }
            return claimRead(&s)
        }
        if read { startRead() }
    }

    /// Starts reading ahead without a first message.
    func start() {
        if state.withLock({ claimRead(&$0) }) { startRead() }
    }

    /// A message answered a read (gRPC thread).
    func deliver(_ message: [UInt8]) {
        let (waiter, read) = state.withLock { s -> (CheckedContinuation<[UInt8]?, any Error>?, Bool) in
            s.readInFlight = false
            if let waiter = s.waiter {
                s.waiter = nil
                return (waiter, claimRead(&s))
            }
            s.messages.append(message)
            return (nil, claimRead(&s))
        }
        waiter?.resume(returning: message)
        if read { startRead() }
    }

    /// The peer sends no more messages. With `finishes`, the sequence ends once the buffer drains.
    func endOfMessages(finishes: Bool) {
        let waiter = state.withLock { s -> CheckedContinuation<[UInt8]?, any Error>? in
            s.readInFlight = false
            s.readsEnded = true
            if finishes { s.finished = true }
            guard finishes, s.buffered == 0, let waiter = s.waiter else { return nil }
            s.waiter = nil
            return waiter
        }
        waiter?.resume(returning: nil)
    }

    /// Ends the sequence: normally (`nil`) or with an error thrown once buffered messages are consumed.
    func finish(_ error: RPCError?) {
        let waiter = state.withLock { s -> CheckedContinuation<[UInt8]?, any Error>? in
            s.readInFlight = false
            s.readsEnded = true
            s.finished = true
            if s.failure == nil { s.failure = error }
            guard s.buffered == 0, let waiter = s.waiter else { return nil }
            s.waiter = nil
            return waiter
        }
        if let waiter {
            if let error { waiter.resume(throwing: error) } else { waiter.resume(returning: nil) }
        }
    }

    private enum Take {
        case message([UInt8], startRead: Bool)
        case end
        case failure(RPCError)
        case wait
    }

    /// Requires the state lock: what `next()` gets now, if anything.
    private func take(_ s: inout State) -> Take {
        if s.buffered > 0 { return .message(s.pop(), startRead: claimRead(&s)) }
        if s.finished { return s.failure.map { .failure($0) } ?? .end }
        return .wait
    }

    /// The next message, nil at the end; throws the stream's error.
    func next() async throws -> [UInt8]? {
        // Most calls find a message buffered: answer without making a continuation.
        switch state.withLock({ take(&$0) }) {
        case .message(let message, let read):
            if read { startRead() }
            return message
        case .end:
            return nil
        case .failure(let error):
            throw error
        case .wait:
            break
        }
        return try await withCheckedThrowingContinuation { continuation in
            var parkedRead = false
            let now = state.withLock { s -> Take in
                let now = take(&s)
                if case .wait = now {
                    s.waiter = continuation
                    parkedRead = claimRead(&s)
                }
                return now
            }
            switch now {
            case .message(let message, let read):
                continuation.resume(returning: message)
                if read { startRead() }
            case .end:
                continuation.resume(returning: nil)
            case .failure(let error):
                continuation.resume(throwing: error)
            case .wait:
                if parkedRead { startRead() }
            }
        }
    }
}
