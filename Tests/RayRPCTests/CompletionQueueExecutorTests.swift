import Foundation
import RayConcurrency
import RayRPC
import Testing

/// Where a piece of a handler ran: its thread (the kernel's thread ID, never reused while the test
/// runs, unlike a `pthread_t`) and that thread's name.
private struct Place: Codable, Equatable {
    var thread: String
    var name: String

    static var here: Place {
        let thread = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")) ?? "?"
        let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?"
        return Place(thread: thread, name: name.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// A server's completion-queue thread, or a stand-in polling its queue.
    var isQueueThread: Bool { name == "rpc-server-cq" || name == "rpc-server-aux" }
}

private actor Counter {
    var value = 0
    func bump() -> Place {
        value += 1
        return .here
    }
}

/// The places a handler ran: at its start, inside an actor, when it replied.
private struct Trip: Codable {
    var start: Place
    var inActor: Place
    var end: Place
}

@Suite(.timeLimit(.minutes(1))) struct CompletionQueueExecutorTests {
    private static func server(waitElsewhereFirst: Bool) throws -> (RPCServer, RPCChannel) {
        let counter = Counter()
        var router = RPCRouter()
        let handler: @Sendable ([UInt8], ServerContext) async throws -> [UInt8] = { _, _ in
            let start = Place.here
            if waitElsewhereFirst {
                // Resumed by a dispatch thread, always. (Not `Task.sleep`: a sleep whose deadline
                // passed before it was scheduled, as under ASan on busy cores, resumes at once, on
                // the queue thread: made runnable by the event, it rightly runs there.)
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(5)) { continuation.resume() }
                }
            }
            let inActor = await counter.bump()
            return try [UInt8](JSONEncoder().encode(Trip(start: start, inActor: inActor, end: .here)))
        }
        router.registerRaw(path: "/t.T/OnQueue", placement: .completionQueue, handler)
        router.registerRaw(path: "/t.T/Default", handler)
        let server = try RPCServer(router: router)
        return (server, try RPCChannel(host: "127.0.0.1", port: server.port))
    }

    private static func trip(_ channel: RPCChannel, _ path: String) async throws -> Trip {
        try JSONDecoder().decode(Trip.self, from: Data(try await channel.rawUnary(path: path, []).message))
    }

    @Test func aHandlerOnTheQueueStaysOnTheThreadThatReceivedItThroughAnActorHop() async throws {
        let (server, channel) = try Self.server(waitElsewhereFirst: false)
        defer { Task { await server.shutdown(grace: .zero) } }
        for _ in 0..<20 {
            let trip = try await Self.trip(channel, "/t.T/OnQueue")
            #expect(trip.start.isQueueThread)
            #expect(trip.inActor == trip.start)
            #expect(trip.end == trip.start)
        }
        // Without it the hop into the actor leaves the completion-queue thread for the server's
        // executor (not Swift's global pool), where the handler replies.
        let trip = try await Self.trip(channel, "/t.T/Default")
        #expect(trip.start.isQueueThread)
        #expect(trip.inActor.name == "ray-rpc")
        #expect(trip.end.name == "ray-rpc")
    }

    @Test func handlersThatWaitElsewhereAllFinish() async throws {
        let (server, channel) = try Self.server(waitElsewhereFirst: true)
        defer { Task { await server.shutdown(grace: .zero) } }
        // Each is resumed by a dispatch thread: many at once, all finish. (Where the rest runs depends
        // on timing: a resume that beats the handler's suspension continues it on the queue thread.)
        let trips = try await withThrowingTaskGroup(of: Trip.self) { group in
            for _ in 0..<64 { group.addTask { try await Self.trip(channel, "/t.T/OnQueue") } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(trips.count == 64)
        for trip in trips { #expect(trip.start.isQueueThread) }
    }

    @Test func aJobMadeRunnableOutsideAQueueEventRunsOnTheFallback() async throws {
        let (server, channel) = try Self.server(waitElsewhereFirst: false)
        defer { Task { await server.shutdown(grace: .zero) } }
        let queueThread = try await Self.trip(channel, "/t.T/OnQueue").start.thread
        // Tasks preferring an executor, started here (no queue event): they run on its fallback, a
        // thread of the runtime or the global pool. (Told apart by thread ID: a dispatch thread
        // started from the queue thread inherits its name.)
        for fallback in [CompletionQueueExecutor.Fallback.thread(.rpc), .globalPool] {
            let executor = CompletionQueueExecutor(fallback: fallback)
            let places = await withTaskGroup(of: Place.self) { group in
                for _ in 0..<20 {
                    group.addTask { await Task(executorPreference: executor) { Place.here }.value }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(places.count == 20)
            for place in places {
                #expect(place.thread != queueThread)
                if case .thread = fallback { #expect(place.name == "ray-rpc") } else { #expect(place.name != "ray-rpc") }
            }
        }
    }
}
