@testable import RayRPC
import Testing

/// The write window of a streaming call, without a call: a failed write must leave the writers waiting
/// for the call's status, which gRPC delivers after it (a server's answer once seen as "the stream
/// broke" in StreamingTests when the failed write's event came first).
@Suite(.timeLimit(.minutes(1))) struct OutboundWindowTests {
    static let answer = RPCError(code: .outOfRange, message: "five is enough")

    /// A writer reserving `bytes`: nil once let in, else the error it got.
    static func writer(_ window: OutboundWindow, _ bytes: Int) -> Task<RPCError?, Never> {
        Task {
            do {
                try await window.reserve(bytes)
                return nil
            } catch {
                return error as? RPCError
            }
        }
    }

    @Test func aWriterParkedWhenAWriteFailsGetsTheStatusThatFollows() async throws {
        let window = OutboundWindow(limit: 10)
        try await window.reserve(10)  // full
        let writer = Self.writer(window, 5)
        // The write in flight fails: its bytes leave, but the parked writer must not be let in.
        try await Task.sleep(for: .milliseconds(50))
        window.breakOff(10)
        try await Task.sleep(for: .milliseconds(50))
        window.close(Self.answer)
        let error = await writer.value
        #expect(error?.code == .outOfRange)
        #expect(error?.message == "five is enough")
    }

    @Test func aWriteAfterAFailedOneWaitsForTheStatus() async throws {
        let window = OutboundWindow(limit: 100)
        try await window.reserve(10)
        window.breakOff(10)
        // Room enough, but the call is ending: the write waits instead of going to a dead call.
        let writer = Self.writer(window, 10)
        try await Task.sleep(for: .milliseconds(50))
        window.completed(0)  // a late successful completion does not let it in either
        try await Task.sleep(for: .milliseconds(50))
        window.close(Self.answer)
        #expect(await writer.value?.message == "five is enough")
        #expect(await window.closed().message == "five is enough")
    }

    @Test func closingFirstKeepsItsReason() async throws {
        let window = OutboundWindow(limit: 10)
        window.close(Self.answer)
        window.breakOff(0)
        window.close(RPCError(code: .cancelled, message: "later"))
        await #expect(throws: RPCError.self) { try await window.reserve(1) }
        #expect(await window.closed().message == "five is enough")
    }
}
