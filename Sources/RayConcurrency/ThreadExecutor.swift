#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An executor with one OS thread of its own: a serial executor for actors (their
/// `unownedExecutor`) and a task executor for tasks that prefer it (`Task(executorPreference:)`,
/// `withTaskExecutorPreference`), with timers (``schedule(at:_:)``, ``sleep(for:)``) that fire on
/// the same thread.
///
/// swift-ray's control plane runs on these, one per daemon in a process (the GCS, the raylet, the
/// core worker), so it never waits for a thread of Swift's global pool: a driver or worker whose own
/// code keeps every pool thread busy still answers leases, registrations, health checks, deadlines and
/// cancellations. (`Task.sleep` needs a free pool thread to wake up; ``sleep(for:)`` does not.)
///
/// What runs here must be short or suspend soon: a job that holds the thread holds up everything else
/// the executor runs. The thread lives as long as the process, so make few of these and keep them
/// (`static let`).
public final class ThreadExecutor: SerialExecutor, TaskExecutor, @unchecked Sendable {
    /// The thread's name (at most 15 characters are shown by `top` and `ps`).
    public let name: String

    // Everything below is guarded by `lock`, except `thread` (written once before init returns).
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    private var jobs: [Work] = []
    private var timers = TimerQueue()
    private var thread = pthread_t()
    private var started = false

    private enum Work {
        /// A job enqueued here: it runs isolated to this executor (an actor's job) with this executor
        /// as its task executor.
        case job(UnownedJob)
        /// A job another task executor handed over: it runs as that executor's.
        case handedOver(UnownedJob, UnownedTaskExecutor)
        case closure(@Sendable () -> Void)
    }

    /// Starts the thread.
    public init(name: String) {
        self.name = name
        lock = .allocate(capacity: 1)
        wake = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(wake, &attributes)
        pthread_condattr_destroy(&attributes)
        let context = Unmanaged.passRetained(self).toOpaque()  // the thread's reference, never given back
        var created = pthread_t()
        let rc = pthread_create(&created, nil, { context in
            let executor = Unmanaged<ThreadExecutor>.fromOpaque(context!).takeUnretainedValue()
            executor.run()
            return nil
        }, context)
        precondition(rc == 0, "ThreadExecutor \(name): pthread_create failed (\(rc))")
        pthread_detach(created)
        pthread_mutex_lock(lock)
        while !started { pthread_cond_wait(wake, lock) }
        pthread_mutex_unlock(lock)
    }

    /// True on this executor's thread.
    public var isCurrentThread: Bool { pthread_equal(pthread_self(), thread) != 0 }

    public func enqueue(_ job: consuming ExecutorJob) {
        add(.job(UnownedJob(job)))
    }

    /// Runs `job` on this thread as `executor` would run it: for task executors that hand jobs to
    /// this one (``CompletionQueueExecutor``-style executors that keep some jobs on a thread of their
    /// own and pass the rest on). The job's task keeps preferring `executor`.
    public func enqueue(_ job: UnownedJob, handedOverBy executor: UnownedTaskExecutor) {
        add(.handedOver(job, executor))
    }

    /// Runs `body` on this thread, after what is queued already.
    public func execute(_ body: @escaping @Sendable () -> Void) {
        add(.closure(body))
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    public func checkIsolated() {
        precondition(isCurrentThread, "expected to run on ThreadExecutor \(name)")
    }

    private func add(_ work: Work) {
        pthread_mutex_lock(lock)
        jobs.append(work)
        pthread_cond_signal(wake)
        pthread_mutex_unlock(lock)
    }

    // MARK: timers

    /// Runs `action` on this thread at `deadline` (at once if it passed), unless cancelled first.
    @discardableResult
    public func schedule(at deadline: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) -> ScheduledTimer {
        pthread_mutex_lock(lock)
        let timer = timers.add(deadline, action)
        pthread_cond_signal(wake)
        pthread_mutex_unlock(lock)
        return timer
    }

    /// Runs `action` on this thread after `delay`, unless cancelled first.
    @discardableResult
    public func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void) -> ScheduledTimer {
        schedule(at: .now + delay, action)
    }

    /// Cancels a timer: true if its action had not started (it never will), false if it ran, is
    /// running or was cancelled already.
    @discardableResult
    public func cancel(_ timer: ScheduledTimer) -> Bool {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return timers.cancel(timer)
    }

    /// Timers not yet fired or cancelled.
    public var pendingTimers: Int {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return timers.count
    }

    // MARK: the thread

    private func run() {
        setThreadName(name)
        pthread_mutex_lock(lock)
        thread = pthread_self()
        started = true
        pthread_cond_broadcast(wake)
        var batch: [Work] = []
        var due: [@Sendable () -> Void] = []
        let serial = asUnownedSerialExecutor()
        let task = asUnownedTaskExecutor()
        while true {
            timers.takeDue(now: .now, into: &due)
            if jobs.isEmpty && due.isEmpty {
                if let next = timers.nextDeadline {
                    var until = monotonicTime(after: next - .now)
                    pthread_cond_timedwait(wake, lock, &until)
                } else {
                    pthread_cond_wait(wake, lock)
                }
                continue
            }
            swap(&batch, &jobs)
            pthread_mutex_unlock(lock)
            for action in due { action() }
            due.removeAll(keepingCapacity: true)
            for work in batch {
                switch work {
                case .job(let job): job.runSynchronously(isolatedTo: serial, taskExecutor: task)
                case .handedOver(let job, let executor): job.runSynchronously(on: executor)
                case .closure(let body): body()
                }
            }
            batch.removeAll(keepingCapacity: true)
            pthread_mutex_lock(lock)
        }
    }
}

/// A timer of a ``ThreadExecutor``, for ``ThreadExecutor/cancel(_:)``.
public struct ScheduledTimer: Hashable, Sendable {
    let id: UInt64
}

/// CLOCK_MONOTONIC `delay` from now, for pthread_cond_timedwait.
private func monotonicTime(after delay: Duration) -> timespec {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    let (seconds, attoseconds) = max(delay, .zero).components
    var result = timespec()
    let nanoseconds = Int(now.tv_nsec) + Int(attoseconds / 1_000_000_000)
    result.tv_sec = now.tv_sec + Int(seconds) + nanoseconds / 1_000_000_000
    result.tv_nsec = nanoseconds % 1_000_000_000
    return result
}

/// Names the calling thread (Glibc's pthread_setname_np is not visible to Swift: the kernel's
/// per-thread file does the same).
private func setThreadName(_ name: String) {
    #if os(Linux)
    let fd = open("/proc/thread-self/comm", O_WRONLY)
    guard fd >= 0 else { return }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
    #endif
}

