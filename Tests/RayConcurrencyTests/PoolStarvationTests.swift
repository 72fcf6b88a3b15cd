import RayConcurrency
import Synchronization
import Testing

/// Keeps Swift's global pool busy for a while, so it runs in the suites `make test` runs on their own
/// after the rest (the `Starvation` filter): the other tests' bodies need that pool too.
@Suite(.serialized, .timeLimit(.minutes(1))) struct PoolStarvationTests {
    @Test func theExecutorsTimersAndJobsNeedNoThreadOfTheGlobalPool() async throws {
        let stop = StopFlag()
        // More CPU-bound jobs than the pool has threads, and more than it can grow by meanwhile.
        let spinners = (0..<32).map { _ in
            Task.detached { () -> Int in
                let end = ContinuousClock.now + .seconds(5)
                var spins = 0
                while !stop.isSet && ContinuousClock.now < end { spins &+= 1 }
                return spins
            }
        }
        let start = ContinuousClock.now
        // A control, to show the pool is really busy: Task.sleep needs a free pool thread to wake up.
        let control = Task.detached { () -> Duration in
            try? await Task.sleep(for: .milliseconds(50))
            return ContinuousClock.now - start
        }
        let probe = Task(executorPreference: testExecutor) { () async throws -> [Duration] in
            var lapses: [Duration] = []
            for _ in 0..<5 {
                let before = ContinuousClock.now
                try await testExecutor.sleep(for: .milliseconds(50))
                lapses.append(ContinuousClock.now - before)
            }
            let before = ContinuousClock.now
            _ = await Counter().add()
            await resumeFromAnotherThread(after: 1000)
            lapses.append(ContinuousClock.now - before)
            return lapses
        }
        // The probe's result is read on a thread of the executor, not of the pool.
        let finished = Mutex<Result<[Duration], any Error>?>(nil)
        Task(executorPreference: testExecutor) {
            let result = await probe.result
            finished.withLock { $0 = result }
            stop.set()
        }
        var total = 0
        for spinner in spinners { total &+= await spinner.value }
        let lapses = try #require(try finished.withLock { $0 }?.get(), "the probe finished before the spinners")
        #expect(total > 0)
        #expect(lapses.prefix(5).allSatisfy { $0 >= .milliseconds(50) && $0 < .milliseconds(500) }, "sleeps of 50 ms took \(lapses)")
        #expect(lapses[5] < .milliseconds(500), "an actor call and a continuation took \(lapses[5])")
        let controlLapse = await control.value
        #expect(controlLapse >= lapses.prefix(5).reduce(.zero, +), "Task.sleep(50 ms) woke after \(controlLapse): the pool was not busy, so this test shows nothing")
    }
}

final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}
