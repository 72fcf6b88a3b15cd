// Ray's ID kinds and how they compose (sizes from Ray's ID specification).

public enum JobIDKind: IDKind { public static let size = 4; public static let name = "JobID" }
public enum ActorIDKind: IDKind { public static let size = 16; public static let name = "ActorID" }
public enum TaskIDKind: IDKind { public static let size = 24; public static let name = "TaskID" }
public enum ObjectIDKind: IDKind { public static let size = 28; public static let name = "ObjectID" }
public enum NodeIDKind: IDKind { public static let size = 28; public static let name = "NodeID" }
public enum WorkerIDKind: IDKind { public static let size = 28; public static let name = "WorkerID" }
public enum PlacementGroupIDKind: IDKind { public static let size = 18; public static let name = "PlacementGroupID" }

/// A job (a driver and everything it starts): 4 bytes.
public typealias JobID = RayID<JobIDKind>
/// An actor: 12 unique bytes, then its JobID.
public typealias ActorID = RayID<ActorIDKind>
/// A task: 8 unique bytes, then the ActorID it belongs to (nil-unique for normal tasks).
public typealias TaskID = RayID<TaskIDKind>
/// An object: the TaskID that made it, then a 4-byte index (returns count from 1, puts likewise).
public typealias ObjectID = RayID<ObjectIDKind>
/// A node (one raylet): 28 random bytes.
public typealias NodeID = RayID<NodeIDKind>
/// A worker process: 28 random bytes.
public typealias WorkerID = RayID<WorkerIDKind>
/// A placement group: 14 unique bytes, then its JobID.
public typealias PlacementGroupID = RayID<PlacementGroupIDKind>

extension RayID where Kind == JobIDKind {
    /// The job with this number (Ray numbers jobs from 1).
    public init(number: UInt32) {
        self.init(unchecked: withUnsafeBytes(of: number.littleEndian) { Array($0) })
    }

    public var number: UInt32 { UInt32(w0 & 0xFFFF_FFFF) }
}

extension RayID where Kind == ActorIDKind {
    /// A fresh actor of `job`.
    public static func random(job: JobID) -> ActorID {
        ActorID(unchecked: Array(ActorID.random().bytes.prefix(12)) + job.bytes)
    }

    /// The actor-less form for `job`, which normal tasks carry.
    public static func none(job: JobID) -> ActorID {
        ActorID(unchecked: [UInt8](repeating: 0, count: 12) + job.bytes)
    }

    public var jobID: JobID { JobID(unchecked: bytes.suffix(4)) }
}

extension RayID where Kind == TaskIDKind {
    /// A fresh normal task of `job`.
    public static func random(job: JobID) -> TaskID {
        TaskID(unchecked: Array(TaskID.random().bytes.prefix(8)) + ActorID.none(job: job).bytes)
    }

    /// A fresh task belonging to `actor` (its creation or a method call).
    public static func random(actor: ActorID) -> TaskID {
        TaskID(unchecked: Array(TaskID.random().bytes.prefix(8)) + actor.bytes)
    }

    /// The task that stands for a driver of `job` (it owns the driver's puts).
    public static func driver(job: JobID) -> TaskID {
        TaskID(unchecked: [UInt8](repeating: 0xFF, count: 8) + ActorID.none(job: job).bytes)
    }

    public var actorID: ActorID { ActorID(unchecked: bytes.suffix(16)) }
    public var jobID: JobID { actorID.jobID }
}

extension RayID where Kind == ObjectIDKind {
    /// The `index`-th object of `task` (returns and puts are numbered from 1).
    public init(task: TaskID, index: UInt32) {
        self.init(unchecked: task.bytes + withUnsafeBytes(of: index.littleEndian) { Array($0) })
    }

    public var taskID: TaskID { TaskID(unchecked: bytes.prefix(24)) }
    public var index: UInt32 { UInt32(truncatingIfNeeded: w3) }
    public var jobID: JobID { taskID.jobID }
}

extension RayID where Kind == PlacementGroupIDKind {
    public static func random(job: JobID) -> PlacementGroupID {
        PlacementGroupID(unchecked: Array(PlacementGroupID.random().bytes.prefix(14)) + job.bytes)
    }

    public var jobID: JobID { JobID(unchecked: bytes.suffix(4)) }
}
