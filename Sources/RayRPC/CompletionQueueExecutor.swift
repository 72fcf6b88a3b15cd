import Dispatch
import RayConcurrency
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A task executor for server handlers on a latency-critical path: a job made runnable while a server
/// completion-queue thread handles an event (the handler starting, a hop into an idle actor) runs on
/// that thread as soon as the event's callback returns, instead of being handed to another thread (a
/// thread wake-up on the way to every reply). A job made runnable anywhere else (a continuation
/// resumed by another thread, a client's reply, a timer) goes to the ``Fallback``, so nothing waits for
/// a particular thread and a completion-queue thread runs only what its own events made runnable. (A
/// wait whose resumption comes before the handler has suspended, such as a short sleep on busy cores,
/// does not suspend at all: the handler goes on where it was.)
///
/// What runs on a completion-queue thread holds up that queue's other events until it suspends, as a
/// handler's first synchronous part always does (`Task.immediate`), for 50 ms at most: then the shim
/// has a stand-in thread poll the queue. Use it for handlers whose work is short or suspends soon.
public final class CompletionQueueExecutor: TaskExecutor {
    /// Where jobs made runnable outside a queue event run.
    public enum Fallback: Sendable {
        /// On this thread: for the runtime's own work, which must not wait for a thread of Swift's
        /// global pool.
        case thread(ThreadExecutor)
        /// On Swift's global pool: for user code (an actor's method), which must not hold up a thread
        /// of the runtime.
        case globalPool
    }

    public let fallback: Fallback

    public init(fallback: Fallback) {
        self.fallback = fallback
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        if let scope = EventScope.current, scope.depth > 0 {
            scope.jobs.append((job, executor))
            return
        }
        switch fallback {
        case .thread(let thread):
            thread.enqueue(job, handedOverBy: executor)
        case .globalPool:
            DispatchQueue.global().async { job.runSynchronously(on: executor) }
        }
    }
}

/// The jobs a completion-queue thread's current callback made runnable for a
/// ``CompletionQueueExecutor``, with the executor each is for. One per thread, used only by its thread.
final class EventScope {
    var depth = 0
    var jobs: [(UnownedJob, UnownedTaskExecutor)] = []

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<EventScope>.fromOpaque(pointer).release() }
        }
        precondition(rc == 0, "pthread_key_create failed: \(rc)")
        return key
    }()

    static var current: EventScope? {
        guard let pointer = pthread_getspecific(key) else { return nil }
        return Unmanaged<EventScope>.fromOpaque(pointer).takeUnretainedValue()
    }

    static var forThisThread: EventScope {
        if let scope = current { return scope }
        let scope = EventScope()
        pthread_setspecific(key, Unmanaged.passRetained(scope).toOpaque())
        return scope
    }
}

/// Runs one server event's callback; the jobs it made runnable for a ``CompletionQueueExecutor`` run
/// on this thread when it returns, in order, with the jobs those make runnable.
@inline(__always)
func withEventScope(_ body: () -> Void) {
    let scope = EventScope.forThisThread
    scope.depth += 1
    body()
    if scope.depth == 1 && !scope.jobs.isEmpty {
        var index = 0
        while index < scope.jobs.count {
            let (job, executor) = scope.jobs[index]
            index += 1
            job.runSynchronously(on: executor)
        }
        scope.jobs.removeAll(keepingCapacity: true)
    }
    scope.depth -= 1
}
