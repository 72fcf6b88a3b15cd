import Foundation
import RayProtos
import RayConcurrency
import RayRPC

public typealias EchoRequest = Ray_Rpc_Testing_EchoRequest
public typealias EchoReply = Ray_Rpc_Testing_EchoReply
public typealias FailRequest = Ray_Rpc_Testing_FailRequest
public typealias StreamRequest = Ray_Rpc_Testing_StreamRequest

/// `ray.rpc.testing.TestService` (Protos/ray/testing.proto): the methods the RPC tests, the demo and
/// the RPC benchmark call.
public enum TestService {
    public static let name = "ray.rpc.testing.TestService"
    public static let echo = RPCMethod<EchoRequest, EchoReply>(service: name, method: "Echo")
    public static let fail = RPCMethod<FailRequest, EchoReply>(service: name, method: "Fail")
    public static let serverStream = RPCMethod<StreamRequest, EchoReply>(service: name, method: "ServerStream")
    public static let clientStream = RPCMethod<EchoRequest, EchoReply>(service: name, method: "ClientStream")
    public static let bidi = RPCMethod<EchoRequest, EchoReply>(service: name, method: "Bidi")

    /// Observations the handlers make, for tests to check.
    public final class Probe: @unchecked Sendable {
        private let lock = NSLock()
        private var _cancelledHandlers = 0
        private var _started = 0
        private var _written = 0

        public init() {}

        public var cancelledHandlers: Int { lock.withLock { _cancelledHandlers } }
        /// Handlers that began (Echo with a delay).
        public var started: Int { lock.withLock { _started } }

        /// Replies ServerStream handlers have written so far.
        public var written: Int { lock.withLock { _written } }

        func noteWritten() { lock.withLock { _written += 1 } }
        func noteCancelled() { lock.withLock { _cancelledHandlers += 1 } }
        func noteStarted() { lock.withLock { _started += 1 } }
    }

    /// A router serving the test service:
    /// - Echo returns payload and text, after `delay_ms` (a cancelled wait is counted in `probe`),
    ///   echoing request metadata `x-echo` back as trailing metadata `x-echoed`;
    /// - Fail ends with the status code and message asked for, with trailing metadata `x-failed: yes`;
    /// - ServerStream sends `count` replies of `message_bytes` bytes, numbered from 0;
    /// - ClientStream replies once with the concatenated payloads and the count as `sequence`;
    /// - Bidi answers each request as it arrives, numbered.
    public static func router(probe: Probe = Probe()) -> RPCRouter {
        var router = RPCRouter()
        router.register(echo) { request, context in
            if request.delayMs > 0 {
                probe.noteStarted()
                do {
                    try await ThreadExecutor.rpc.sleep(for: .milliseconds(Int(request.delayMs)))
                } catch {
                    probe.noteCancelled()
                    throw error
                }
            }
            if let value = context.requestMetadata["x-echo"] { context.addTrailingMetadata("x-echoed", value) }
            var reply = EchoReply()
            reply.payload = request.payload
            reply.text = request.text
            return reply
        }
        router.register(fail) { request, context in
            context.addTrailingMetadata("x-failed", "yes")
            throw RPCError(code: RPCError.Code(rawValue: Int(request.code)), message: request.message)
        }
        router.registerServerStreaming(serverStream) { request, writer, _ in
            let payload = Data(count: Int(request.messageBytes))
            for i in 0..<Int(request.count) {
                var reply = EchoReply()
                reply.sequence = Int64(i)
                reply.payload = payload
                try await writer.write(reply)
                probe.noteWritten()
            }
        }
        router.registerClientStreaming(clientStream) { requests, _ in
            var reply = EchoReply()
            for try await request in requests {
                reply.payload.append(request.payload)
                reply.sequence += 1
            }
            return reply
        }
        router.registerBidirectional(bidi) { requests, writer, _ in
            var n: Int64 = 0
            for try await request in requests {
                var reply = EchoReply()
                reply.text = request.text
                reply.payload = request.payload
                reply.sequence = n
                n += 1
                try await writer.write(reply)
            }
        }
        return router
    }
}
