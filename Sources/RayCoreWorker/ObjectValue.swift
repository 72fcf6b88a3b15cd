#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayProtos

/// What an object holds once it exists: its encoded bytes inline (small objects, kept in the owner's
/// memory), a place in this node's shared-memory store (large ones), a place in another node's store
/// (pulled here when read), or the error its task raised.
public enum ObjectValue: Sendable {
    case inline([UInt8])
    case shared(offset: Int, size: Int)
    case remote(Ray_Rpc_ObjectLocation)
    case error(TaskFailure)

    /// The value a reply carries, seen from `localNode`: a location on another node is `remote`.
    init(_ object: Ray_Rpc_ReturnObject, localNode: Data) {
        switch object.value {
        case .data(let data): self = .inline([UInt8](data))
        case .location(let location) where !location.nodeID.isEmpty && location.nodeID != localNode:
            self = .remote(location)
        case .location(let location): self = .shared(offset: Int(location.offset), size: Int(location.size))
        case .error(let error): self = .error(TaskFailure(error))
        case nil: self = .error(TaskFailure(kind: .taskError, type: "", message: "the task returned no value", function: ""))
        }
    }
}

/// An error a task raised, or the system raised for it, as its caller sees it.
public struct TaskFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// Ray's error kind: `RayTaskError`, `WorkerCrashedError`, `TaskCancelledError`, ...
    public var kind: RayError.Kind
    /// The Swift type of the error the task threw (`""` for system errors).
    public var type: String
    public var message: String
    /// The remote function's name.
    public var function: String

    public init(kind: RayError.Kind, type: String, message: String, function: String) {
        self.kind = kind
        self.type = type
        self.message = message
        self.function = function
    }

    public init(_ error: Ray_Rpc_TaskError) {
        self.init(kind: RayError.Kind(rawValue: error.kind), type: error.errorType, message: error.message,
                  function: error.functionName)
    }

    var proto: Ray_Rpc_TaskError {
        var error = Ray_Rpc_TaskError()
        error.kind = kind.rawValue
        error.errorType = type
        error.message = message
        error.functionName = function
        return error
    }

    public var description: String {
        let source = type.isEmpty ? "" : " (\(type))"
        return "\(kind) in \(function.isEmpty ? "a task" : function)\(source): \(message)"
    }
}

extension ObjectValue {
    /// The value as a reply carries it (a local shared object named by this node and its raylet).
    func returnObject(node: Data = Data(), raylet: String = "") -> Ray_Rpc_ReturnObject {
        var object = Ray_Rpc_ReturnObject()
        switch self {
        case .inline(let bytes): object.data = Data(bytes)
        case .shared(let offset, let size):
            var location = Ray_Rpc_ObjectLocation()
            location.offset = Int64(offset)
            location.size = Int64(size)
            location.nodeID = node
            location.rayletAddress = raylet
            object.location = location
        case .remote(let location): object.location = location
        case .error(let failure): object.error = failure.proto
        }
        return object
    }

    var returnObject: Ray_Rpc_ReturnObject { returnObject() }
}
