import RayCommon
import RayProtos
import Synchronization

/// Collects the object references a value carries as it is encoded (so a task in flight keeps them
/// alive) or decoded (so a worker can tell owners what it still borrows when a task ends).
public final class ReferenceCollector: Sendable {
    private let references = Mutex<[(ObjectID, Ray_Rpc_Address?)]>([])

    public init() {}

    public func add(_ id: ObjectID, owner: Ray_Rpc_Address?) { references.withLock { $0.append((id, owner)) } }

    public var collected: [(ObjectID, Ray_Rpc_Address?)] { references.withLock { $0 } }
}

/// Where `ObjectRef` encoding and decoding report the references they see.
public enum ReferenceTracking {
    /// Set while a task's argument is encoded.
    @TaskLocal public static var encoding: ReferenceCollector?
    /// Set while a task runs on a worker.
    @TaskLocal public static var decoding: ReferenceCollector?
}
