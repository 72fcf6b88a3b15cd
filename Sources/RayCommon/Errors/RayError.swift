/// An error of the Ray runtime, with an extensible kind (Ray's error types), a message and a cause.
public struct RayError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, in Ray's terms.
    public struct Kind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The task's own code threw; the cause is the remote error.
        public static let taskError = Kind(rawValue: "RayTaskError")
        /// The actor's process died or was killed.
        public static let actorDied = Kind(rawValue: "ActorDiedError")
        /// The worker running the task died (crashed, killed, out of memory).
        public static let workerCrashed = Kind(rawValue: "WorkerCrashedError")
        /// Every copy of an object is gone and it cannot be rebuilt.
        public static let objectLost = Kind(rawValue: "ObjectLostError")
        /// A put or a result does not fit the object store.
        public static let objectStoreFull = Kind(rawValue: "ObjectStoreFullError")
        /// An object with this ID is already in the store (IDs are never reused).
        public static let objectExists = Kind(rawValue: "ObjectExistsError")
        /// The node ran out of memory and the task was killed.
        public static let outOfMemory = Kind(rawValue: "OutOfMemoryError")
        /// `get` with a timeout gave up.
        public static let getTimeout = Kind(rawValue: "GetTimeoutError")
        /// The task was cancelled.
        public static let taskCancelled = Kind(rawValue: "TaskCancelledError")
        /// A value did not encode or decode.
        public static let serialization = Kind(rawValue: "RaySerializationError")
        /// The cluster could not be reached.
        public static let connection = Kind(rawValue: "ConnectionError")
        /// The task can never be scheduled: no node has the resources it asks for.
        public static let infeasible = Kind(rawValue: "TaskUnschedulableError")
        /// The placement group a task was scheduled in was removed before or while it ran.
        public static let taskPlacementGroupRemoved = Kind(rawValue: "TaskPlacementGroupRemoved")
        /// The placement group an actor was scheduled in was removed before it was created.
        public static let actorPlacementGroupRemoved = Kind(rawValue: "ActorPlacementGroupRemoved")
        /// Ray itself failed (a function no worker knows, a broken invariant).
        public static let system = Kind(rawValue: "RaySystemError")

        public var description: String { rawValue }
    }

    public var kind: Kind
    public var message: String
    /// What caused it, if known (a remote error's description, an RPC status).
    public var cause: String?

    public init(_ kind: Kind, _ message: String, cause: String? = nil) {
        self.kind = kind
        self.message = message
        self.cause = cause
    }

    public var description: String {
        cause.map { "\(kind): \(message) (cause: \($0))" } ?? "\(kind): \(message)"
    }
}
