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
                var lap = ContinuousClock.now
                let error = await rpcError {
                    _ = try await channel.unary(TestService.echo, echoRequest(delayMs: 30_000),
                                                options: CallOptions(timeout: .milliseconds(100)))
                }
                #expect(error?.code == .deadlineExceeded)
                took["deadline"] = ContinuousClock.now - lap
                // The server's handler learns of it: its sleep is cancelled.
                lap = ContinuousClock.now
                while probe.cancelledHandlers == 0 && ContinuousClock.now - lap < .seconds(5) {
                    try await Self.caller.sleep(for: .milliseconds(1))
                }
                took["handler_cancelled"] = ContinuousClock.now - lap
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
            #expect(probe.cancelledHandlers == 1)
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
