import Foundation
import RayConcurrency
import RayRPC
import RPCTestService
import Synchronization
import Testing

/// A server and its callers in a process whose global pool is busy: deadlines, cancellations and
/// streams are still delivered. Keeps the pool busy, so it runs on its own after the rest of the
/// suite (the `Starvation` filter).
@Suite(.serialized, .timeLimit(.minutes(1))) struct RPCStarvationTests {
    static let caller = ThreadExecutor(name: "test-caller")

    @Test func deadlinesCancellationsAndStreamsNeedNoThreadOfTheGlobalPool() async throws {
        let probe = TestService.Probe()
        try await withTestServer(probe: probe) { _, channel in
            let stop = Flag()
            let spinning = Task.detached {
                await withTaskGroup(of: Void.self) { group in
                    // More CPU-bound jobs than the pool has threads, and more than it can grow by.
                    for _ in 0..<32 {
                        group.addTask {
                            let end = ContinuousClock.now + .seconds(10)
                            while !stop.isSet && ContinuousClock.now < end {}
                        }
                    }
                }
            }
            let start = ContinuousClock.now
            // The control: Task.sleep needs a free pool thread to wake up.
            let control = Task.detached { () -> Duration in
                try? await Task.sleep(for: .milliseconds(20))
                return ContinuousClock.now - start
            }
            let checks = Task(executorPreference: Self.caller) { () async throws -> [String: Duration] in
                var took: [String: Duration] = [:]
                // A handler running when its call's deadline passes is cancelled. (The deadline leaves
                // the call room to reach its handler on a loaded machine: one whose deadline passes
                // before that never does, gRPC drops it.)
                let running = Task(executorPreference: Self.caller) {
                    await rpcError {
                        _ = try await channel.unary(TestService.echo, echoRequest(delayMs: 30_000),
                                                    options: CallOptions(timeout: .seconds(2)))
                    }
                }
                var lap = ContinuousClock.now
                while probe.started == 0 && ContinuousClock.now - lap < .seconds(2) {
                    try await Self.caller.sleep(for: .milliseconds(1))
                }
                #expect(probe.started == 1, "the handler did not start within 2 s")
                #expect(await running.value?.code == .deadlineExceeded)
                lap = ContinuousClock.now
                while probe.cancelledHandlers == 0 && ContinuousClock.now - lap < .seconds(5) {
                    try await Self.caller.sleep(for: .milliseconds(1))
                }
                took["handler_cancelled"] = ContinuousClock.now - lap
                // A 100 ms deadline reaches the caller in time.
                lap = ContinuousClock.now
                let error = await rpcError {
                    _ = try await channel.unary(TestService.echo, echoRequest(delayMs: 30_000),
                                                options: CallOptions(timeout: .milliseconds(100)))
                }
                #expect(error?.code == .deadlineExceeded)
                took["deadline"] = ContinuousClock.now - lap
                lap = ContinuousClock.now
                var request = StreamRequest()
                request.count = 200
                request.messageBytes = 100
                let count = try await channel.serverStreaming(TestService.serverStream, request,
                                                              options: CallOptions(timeout: .seconds(5))) { replies in
                    try await replies.reduce(0) { count, _ in count + 1 }
                }
                #expect(count == 200)
                took["stream"] = ContinuousClock.now - lap
                stop.set()
                return took
            }
            // Read on the caller's thread, not the pool's.
            let result = Mutex<Result<[String: Duration], any Error>?>(nil)
            Task(executorPreference: Self.caller) {
                let outcome = await checks.result
                result.withLock { $0 = outcome }
                stop.set()
            }
            await spinning.value
            let took = try #require(try result.withLock { $0 }?.get(), "the checks finished before the spinners")
            #expect(took["deadline"].map { $0 < .seconds(1) } == true, "the 100 ms deadline was delivered after \(String(describing: took["deadline"]))")
            #expect(took["handler_cancelled"].map { $0 < .seconds(1) } == true, "the handler saw its cancellation after \(String(describing: took["handler_cancelled"]))")
            #expect(took["stream"].map { $0 < .seconds(2) } == true, "200 streamed messages took \(String(describing: took["stream"]))")
            // The 100 ms call's handler, if the call reached it, was cancelled too.
            #expect((1...2).contains(probe.cancelledHandlers))
            let controlLapse = await control.value
            #expect(controlLapse >= took.values.reduce(.zero, +), "Task.sleep(20 ms) woke after \(controlLapse): the pool was not busy, so this test shows nothing")
        }
    }
}

final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}
