import Synchronization

extension ThreadExecutor {
    /// Suspends the calling task until `deadline`, woken by this executor's thread (not by a thread of
    /// Swift's global pool, as `Task.sleep` is). Throws `CancellationError` as soon as the task is
    /// cancelled. The task goes on wherever it runs (its actor, or the executor it prefers).
    public func sleep(until deadline: ContinuousClock.Instant) async throws {
        try Task.checkCancellation()
        let sleeper = Sleeper()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let timer = schedule(at: deadline) { sleeper.fire() }
                sleeper.wait(continuation, timer: timer, on: self)
            }
        } onCancel: {
            sleeper.cancel(on: self)
        }
    }

    /// Suspends the calling task for `duration` (see ``sleep(until:)``).
    public func sleep(for duration: Duration) async throws {
        try await sleep(until: .now + duration)
    }
}

/// One sleep's state: the timer may fire, and the task may be cancelled, before or after the
/// continuation exists; whichever comes first resumes it, once.
private final class Sleeper: Sendable {
    private enum State {
        case starting
        case waiting(CheckedContinuation<Void, any Error>, ScheduledTimer)
        case fired
        case cancelled
        case done
    }

    private let state = Mutex(State.starting)

    func wait(_ continuation: CheckedContinuation<Void, any Error>, timer: ScheduledTimer, on executor: ThreadExecutor) {
        let outcome = state.withLock { state -> Result<Void, any Error>? in
            switch state {
            case .starting:
                state = .waiting(continuation, timer)
                return nil
            case .fired:
                state = .done
                return .success(())
            case .cancelled:
                state = .done
                return .failure(CancellationError())
            case .waiting, .done:
                preconditionFailure("a sleep waits once")
            }
        }
        guard let outcome else { return }
        executor.cancel(timer)
        continuation.resume(with: outcome)
    }

    func fire() {
        let continuation = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            switch state {
            case .starting:
                state = .fired
                return nil
            case .waiting(let continuation, _):
                state = .done
                return continuation
            case .fired, .cancelled, .done:
                return nil
            }
        }
        continuation?.resume()
    }

    func cancel(on executor: ThreadExecutor) {
        let waiting = state.withLock { state -> (CheckedContinuation<Void, any Error>, ScheduledTimer)? in
            switch state {
            case .starting:
                state = .cancelled
                return nil
            case .waiting(let continuation, let timer):
                state = .done
                return (continuation, timer)
            case .fired, .cancelled, .done:
                return nil
            }
        }
        guard let (continuation, timer) = waiting else { return }
        executor.cancel(timer)
        continuation.resume(throwing: CancellationError())
    }
}
