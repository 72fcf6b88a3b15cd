import Foundation
@testable import RayCoreWorker
import Synchronization
import Testing

/// The order and concurrency rules of an actor's worker, without processes.
@Suite(.timeLimit(.minutes(1))) struct ActorTaskReceiverTests {
    final class Recorder: Sendable {
        let started = Mutex<[Int64]>([])
        let running = Mutex((now: 0, most: 0))
    }

    /// Admits `sequences` of one caller in the order given (each from its own task), records the order
    /// the calls started in, and finishes each after `holdMilliseconds`.
    private func startOrder(_ receiver: ActorTaskReceiver, caller: Data, arrivals: [Int64], holdMilliseconds: Int = 0) async -> [Int64] {
        let recorder = Recorder()
        await withTaskGroup(of: Void.self) { group in
            for sequence in arrivals {
                group.addTask {
                    await receiver.admit(caller: caller, sequence: sequence)
                    recorder.started.withLock { $0.append(sequence) }
                    if holdMilliseconds > 0 { try? await Task.sleep(for: .milliseconds(holdMilliseconds)) }
                    receiver.finish()
                }
                // Arrivals really happen in this order.
                try? await Task.sleep(for: .milliseconds(2))
            }
        }
        return recorder.started.withLock { $0 }
    }

    @Test func aCallersCallsStartInSequenceWhateverOrderTheyArrive() async {
        let receiver = ActorTaskReceiver()
        let order = await startOrder(receiver, caller: Data([1]), arrivals: [3, 1, 0, 4, 2])
        #expect(order == [0, 1, 2, 3, 4])
    }

    @Test func callersAreOrderedIndependently() async {
        let receiver = ActorTaskReceiver()
        // Caller 2's first call does not wait for caller 1's missing call 0.
        let early = Task { await startOrder(receiver, caller: Data([1]), arrivals: [1]) }
        let other = await startOrder(receiver, caller: Data([2]), arrivals: [0, 1])
        #expect(other == [0, 1])
        _ = await startOrder(receiver, caller: Data([1]), arrivals: [0])
        #expect(await early.value == [1])
    }

    @Test func atMostMaxConcurrencyRunAtOnce() async {
        for limit in [1, 3] {
            let receiver = ActorTaskReceiver()
            receiver.configure(maxConcurrency: limit)
            let recorder = Recorder()
            await withTaskGroup(of: Void.self) { group in
                for sequence in Int64(0)..<8 {
                    group.addTask {
                        await receiver.admit(caller: Data([7]), sequence: sequence)
                        recorder.running.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
                        try? await Task.sleep(for: .milliseconds(20))
                        recorder.running.withLock { $0.now -= 1 }
                        receiver.finish()
                    }
                }
            }
            #expect(recorder.running.withLock { $0.most } == limit)
        }
    }
}
