#if canImport(Glibc)
import Glibc
#endif
import RayConcurrency
import Synchronization
import Testing

let testExecutor = ThreadExecutor(name: "test-executor")

/// An actor whose jobs run on `testExecutor`.
actor Counter {
    nonisolated var unownedExecutor: UnownedSerialExecutor { testExecutor.asUnownedSerialExecutor() }
    private var value = 0
    func add() -> (Int, onThread: Bool) {
        value += 1
        return (value, testExecutor.isCurrentThread)
    }
}

/// A default actor: its jobs run on the executor its caller prefers.
actor Plain {
    func onExecutorThread() -> Bool { testExecutor.isCurrentThread }
}

/// Resumes `body`'s continuation from a new OS thread after `microseconds`.
func resumeFromAnotherThread(after microseconds: UInt32) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        startThread {
            usleep(microseconds)
            continuation.resume()
        }
    }
}

func startThread(_ body: @escaping @Sendable () -> Void) {
    final class Box { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }
    var thread = pthread_t()
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    let rc = pthread_create(&thread, nil, { context in
        Unmanaged<Box>.fromOpaque(context!).takeRetainedValue().body()
        return nil
    }, context)
    precondition(rc == 0)
    pthread_detach(thread)
}

@Suite(.timeLimit(.minutes(1))) struct ThreadExecutorTests {
    @Test func anActorOnTheExecutorRunsThereOneJobAtATime() async {
        let counter = Counter()
        let results = await withTaskGroup(of: [(Int, onThread: Bool)].self) { group in
            for _ in 0..<50 {
                group.addTask { var seen: [(Int, onThread: Bool)] = []; for _ in 0..<100 { seen.append(await counter.add()) }; return seen }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        #expect(results.allSatisfy { $0.onThread }, "every call ran on the executor's thread")
        #expect(Set(results.map(\.0)) == Set(1...5000), "5000 increments, none lost or repeated")
        #expect(!testExecutor.isCurrentThread)
    }

    @Test func aTaskThatPrefersItRunsThereAfterEverySuspension() async throws {
        let seen = try await Task(executorPreference: testExecutor) { () async throws -> [Bool] in
            var seen = [testExecutor.isCurrentThread]
            await resumeFromAnotherThread(after: 2000)
            seen.append(testExecutor.isCurrentThread)
            seen.append(await Plain().onExecutorThread())
            seen.append(testExecutor.isCurrentThread)
            try await testExecutor.sleep(for: .milliseconds(5))
            seen.append(testExecutor.isCurrentThread)
            // A child task inherits the preference.
            async let child = testExecutor.isCurrentThread
            seen.append(await child)
            return seen
        }.value
        #expect(seen == [true, true, true, true, true, true], "start, continuation, default actor, back, sleep, child: \(seen)")
    }

    @Test func timersFireInDeadlineOrderAndCancelledOnesNever() async throws {
        let fired = Mutex<[Int]>([])
        let start = ContinuousClock.now
        let early = testExecutor.schedule(at: start + .milliseconds(10)) { fired.withLock { $0.append(10) } }
        testExecutor.schedule(at: start + .milliseconds(30)) { fired.withLock { $0.append(30) } }
        let dropped = testExecutor.schedule(at: start + .milliseconds(20)) { fired.withLock { $0.append(20) } }
        testExecutor.schedule(at: start - .seconds(1)) { fired.withLock { $0.append(0) } }  // already due
        #expect(testExecutor.cancel(dropped), "a pending timer cancels")
        #expect(!testExecutor.cancel(dropped), "once")
        let deadline = ContinuousClock.now + .seconds(10)
        while fired.withLock({ $0.count }) < 3 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        try await Task.sleep(for: .milliseconds(30))
        #expect(fired.withLock { $0 } == [0, 10, 30])
        #expect(!testExecutor.cancel(early), "a timer that fired does not cancel")
        #expect(ContinuousClock.now - start >= .milliseconds(30))
    }

    /// Its own executor: the other tests' timers come and go on `testExecutor` meanwhile.
    static let quiet = ThreadExecutor(name: "test-quiet")

    @Test func manyCancelledTimersLeaveNothingBehind() {
        let timers = (0..<1000).map { _ in Self.quiet.schedule(after: .seconds(3600)) {} }
        #expect(Self.quiet.pendingTimers == 1000)
        #expect(timers.allSatisfy { Self.quiet.cancel($0) })
        #expect(Self.quiet.pendingTimers == 0)
    }

    @Test func sleepEndsWhenItsTaskIsCancelled() async {
        let start = ContinuousClock.now
        let sleeper = Task(executorPreference: testExecutor) { () async -> String in
            do {
                try await testExecutor.sleep(for: .seconds(60))
                return "woke"
            } catch {
                return "\(type(of: error))"
            }
        }
        try? await Task.sleep(for: .milliseconds(20))
        sleeper.cancel()
        #expect(await sleeper.value == "CancellationError")
        #expect(ContinuousClock.now - start < .seconds(20), "cancelled, not slept out")
        let cancelledFirst = Task(executorPreference: testExecutor) { () async -> Bool in
            withUnsafeCurrentTask { $0?.cancel() }
            return (try? await testExecutor.sleep(for: .seconds(60))) == nil
        }
        #expect(await cancelledFirst.value, "a task cancelled before it sleeps does not sleep")
    }

    @Test func aSleepFromAnotherThreadWakesOnTime() async throws {
        // A task on the global pool sleeping on the executor's clock: it resumes on the pool.
        let start = ContinuousClock.now
        try await testExecutor.sleep(for: .milliseconds(50))
        #expect(ContinuousClock.now - start >= .milliseconds(50))
        #expect(!testExecutor.isCurrentThread)
    }
}
