#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayRPC

extension RayID {
    /// An ID from a request's field, or INVALID_ARGUMENT naming the field: how every service reads the
    /// IDs it is sent.
    public init(_ bytes: Data, field: String) throws(RPCError) {
        do {
            try self.init(bytes: bytes)
        } catch {
            throw RPCError(code: .invalidArgument, message: "\(field): \(error.message)")
        }
    }
}
