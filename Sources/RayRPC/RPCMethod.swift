import SwiftProtobuf

/// A method of a service, by its full path (`/package.Service/Method`) and message types.
public struct RPCMethod<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>: Sendable, Hashable {
    public let path: String

    public init(_ path: String) { self.path = path }

    public init(service: String, method: String) { self.path = "/\(service)/\(method)" }
}

extension SwiftProtobuf.Message {
    @inline(__always)
    static func _decode(_ bytes: [UInt8]) throws(RPCError) -> Self {
        do {
            return try Self(serializedBytes: bytes)
        } catch {
            throw RPCError(code: .invalidArgument, message: "could not decode \(Self.protoMessageName): \(error)")
        }
    }

    @inline(__always)
    func _encode() throws(RPCError) -> [UInt8] {
        do {
            return try serializedBytes()
        } catch {
            throw RPCError(code: .internalError, message: "could not encode \(Self.protoMessageName): \(error)")
        }
    }
}
