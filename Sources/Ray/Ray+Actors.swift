import Distributed
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayCoreWorker
import RayProtos
import RayRPC
import RayServices
import Synchronization

/// How an actor is created (Ray's `.options(...)` of an actor class).
public struct ActorOptions: Sendable {
    public enum Lifetime: Sendable {
        /// Dies with its owner (the driver or worker that created it).
        case nonDetached
        /// Outlives its owner; ends with `ray.kill` (or its worker's death).
        case detached
    }

    /// CPUs the actor holds while it lives (Ray holds 0 once an actor runs; we hold what is asked).
    public var numCPUs: Double
    /// Custom resources it holds, e.g. `["GPU": 1]`.
    public var resources: [String: Double]
    /// A name other drivers and workers find it by (``Ray/getActor(_:named:namespace:)``), unique
    /// within its namespace while it lives.
    public var name: String?
    /// The name's namespace (default: the driver's, see ``Ray/namespace``).
    public var namespace: String?
    public var lifetime: Lifetime
    /// Calls that may run at once (1: one at a time in each caller's order, as Ray's actors; more:
    /// an async actor whose calls interleave at their `await`s).
    public var maxConcurrency: Int
    /// Where it may be placed (Ray's `scheduling_strategy`).
    public var scheduling: SchedulingStrategy
    /// Only on nodes whose labels match (Ray 2.60's `label_selector`).
    public var labelSelector: [String: String]

    public init(numCPUs: Double = 0, resources: [String: Double] = [:], name: String? = nil, namespace: String? = nil,
                lifetime: Lifetime = .nonDetached, maxConcurrency: Int = 1, scheduling: SchedulingStrategy = .default,
                labelSelector: [String: String] = [:]) {
        self.scheduling = scheduling
        self.labelSelector = labelSelector
        self.numCPUs = numCPUs
        self.resources = resources
        self.name = name
        self.namespace = namespace
        self.lifetime = lifetime
        self.maxConcurrency = maxConcurrency
    }
}

/// What creating, finding and killing actors needs: this process's core worker and actor system, the
/// job, and the job's namespace.
struct ActorContext {
    let worker: CoreWorker
    let actorSystem: RayActorSystem
    let jobID: JobID
    let namespace: @Sendable () async throws -> String
}

extension Ray {
    var actorContext: ActorContext {
        ActorContext(worker: worker, actorSystem: actorSystem, jobID: jobID, namespace: { [namespace] in namespace })
    }

    /// Creates an actor of type `A` on a worker of the cluster (a worker leased for it by the GCS on
    /// a node with the resources asked for), runs its `init(actorSystem:args:)` there, and returns its
    /// handle once it is alive. Throws the initializer's error as a `RayTaskError`; a name already
    /// in use, or resources no node has, as a `RayError`.
    public func actor<A: RayActor>(_ type: A.Type, args: A.CreationArguments, options: ActorOptions = ActorOptions()) async throws -> A {
        try await Self.createActor(type, args: args, options: options, in: actorContext)
    }

    /// The live actor named `name` in `namespace` (default: this driver's), created by any driver or
    /// worker of the cluster. Throws if there is none.
    public func getActor<A: RayActor>(_ type: A.Type, named name: String, namespace: String? = nil) async throws -> A {
        try await Self.findActor(type, named: name, namespace: namespace, in: actorContext)
    }

    /// Ends an actor at once (Ray's `ray.kill`): its worker process is killed, calls in flight and
    /// later fail with `ActorDiedError`, and its name is free again.
    public func kill<A: RayActor>(_ actor: A) async throws {
        try await Self.killActor(actor, in: actorContext)
    }

    /// ``actor(_:args:options:)`` where no `Ray` value is at hand: in a task or an actor's method. The
    /// new actor belongs to this worker (unless detached it ends when the worker does) and its name
    /// lives in the job's namespace unless `options` says otherwise.
    public static func actor<A: RayActor>(_ type: A.Type, args: A.CreationArguments, options: ActorOptions = ActorOptions()) async throws -> A {
        try await createActor(type, args: args, options: options, in: try currentActorContext())
    }

    /// ``getActor(_:named:namespace:)`` in a task or an actor's method (default namespace: the job's).
    public static func getActor<A: RayActor>(_ type: A.Type, named name: String, namespace: String? = nil) async throws -> A {
        try await findActor(type, named: name, namespace: namespace, in: try currentActorContext())
    }

    /// ``kill(_:)`` in a task or an actor's method.
    public static func kill<A: RayActor>(_ actor: A) async throws {
        try await killActor(actor, in: try currentActorContext())
    }

    private static let jobNamespace = Mutex<String?>(nil)

    /// Records the driver's namespace, which static calls in the driver then use.
    static func setJobNamespace(_ namespace: String) { jobNamespace.withLock { $0 = namespace } }

    private static func currentActorContext() throws -> ActorContext {
        guard let worker = currentWorker, let system = worker.actorHost as? RayActorSystem else {
            throw RayError(.system, "Ray is not running in this process: start it with Ray.start() or a RayApplication")
        }
        return ActorContext(worker: worker, actorSystem: system, jobID: worker.jobID) {
            if let known = jobNamespace.withLock({ $0 }) { return known }
            // A worker: the job's namespace is in the GCS's job table, as its driver registered it.
            let jobs: [Ray_Rpc_JobTableData]
            do {
                jobs = try await worker.gcsChannel().unary(
                    GCSMethods.getAllJobInfo, Ray_Rpc_GetAllJobInfoRequest(), options: CallOptions(timeout: .seconds(10))).jobInfoList
            } catch {
                throw RayError(.connection, "the GCS did not say the namespace of job \(worker.jobID)", cause: "\(error)")
            }
            guard let namespace = jobs.first(where: { $0.jobID == Data(worker.jobID.bytes) })?.namespace, !namespace.isEmpty else {
                throw RayError(.system, "job \(worker.jobID) has no namespace in the GCS's job table")
            }
            jobNamespace.withLock { $0 = namespace }
            return namespace
        }
    }

    private static func createActor<A: RayActor>(_ type: A.Type, args: A.CreationArguments, options: ActorOptions, in context: ActorContext) async throws -> A {
        let worker = context.worker
        let className = String(describing: A.self)
        guard let typeName = _mangledTypeName(A.self), !typeName.contains("$"), _typeByName(typeName) != nil else {
            throw RayError(.system, "\(className) cannot be created on another process: it is declared inside a function (or is otherwise not reachable by name); declare Ray actor types at file scope")
        }
        guard options.maxConcurrency >= 1 else { throw RayError(.system, "maxConcurrency must be at least 1") }
        if case .placementGroup(let group, let index, _) = options.scheduling, !(-1..<group.bundles.count).contains(index) {
            throw RayError(.system, "bundleIndex \(index) is not -1 or a bundle of \(group) (0..<\(group.bundles.count))")
        }
        var resources = options.resources
        resources["CPU"] = options.numCPUs
        resources = resources.filter { $0.value != 0 }
        if let bad = resources.first(where: { $0.value < 0 || !$0.value.isFinite }) {
            throw RayError(.system, "resource \(bad.key) cannot be \(bad.value)")
        }
        let argument = encodeArgument(args, function: "\(className).init", index: 1)
        guard let bytes = argument.encodedValue else {
            throw RayError(.serialization, "the arguments of \(className).init (\(A.CreationArguments.self)) do not encode")
        }
        let namespace: String
        if let given = options.namespace { namespace = given } else { namespace = try await context.namespace() }
        let actorID = RayCommon.ActorID.random(job: context.jobID)
        var spec = Ray_Rpc_TaskSpec()
        spec.type = .actorCreationTask
        spec.taskID = Data(TaskID.random(actor: actorID).bytes)
        spec.jobID = Data(context.jobID.bytes)
        spec.functionName = "\(className).init"
        var arg = Ray_Rpc_TaskArg()
        arg.inlineData = Data(bytes)
        spec.args = [arg]
        spec.numReturns = 1
        spec.callerAddress = worker.address
        (spec.requiredResources, spec.schedulingStrategy) = worker.placement(resources, options.scheduling.proto)
        spec.labelSelector = options.labelSelector
        spec.actorCreationTaskSpec.actorID = Data(actorID.bytes)
        spec.actorCreationTaskSpec.typeName = typeName
        spec.actorCreationTaskSpec.className = className
        spec.actorCreationTaskSpec.maxConcurrency = Int32(options.maxConcurrency)
        spec.actorCreationTaskSpec.name = options.name ?? ""
        spec.actorCreationTaskSpec.rayNamespace = namespace
        spec.actorCreationTaskSpec.isDetached = options.lifetime == .detached
        var request = Ray_Rpc_CreateActorRequest()
        request.taskSpec = spec
        let reply: Ray_Rpc_CreateActorReply
        do {
            reply = try await worker.gcsChannel().unary(GCSMethods.createActor, request, options: CallOptions(timeout: .seconds(3600)))
        } catch {
            throw RayError(.connection, "the GCS did not create actor \(className)", cause: "\(error)")
        }
        if reply.hasCreationError {
            throw TaskFailure(reply.creationError)
        }
        guard reply.status.code == 0, reply.actor.state == .alive else {
            throw RayError(.actorDied, "actor \(className) could not be created: \(reply.status.message)")
        }
        let id = RayActorID(actorID: actorID, address: reply.actor.address, className: className,
                            maxConcurrency: options.maxConcurrency)
        return try A.resolve(id: id, using: context.actorSystem)
    }

    private static func findActor<A: RayActor>(_ type: A.Type, named name: String, namespace: String?, in context: ActorContext) async throws -> A {
        let worker = context.worker
        var request = Ray_Rpc_GetNamedActorInfoRequest()
        request.name = name
        if let namespace { request.rayNamespace = namespace } else { request.rayNamespace = try await context.namespace() }
        let data: Ray_Rpc_ActorTableData
        do {
            data = try await worker.gcsChannel().unary(GCSMethods.getNamedActorInfo, request, options: CallOptions(timeout: .seconds(10))).actorTableData
        } catch where error.code == .notFound {
            throw RayError(.system, "no live actor named '\(name)' in namespace '\(request.rayNamespace)'")
        } catch {
            throw RayError(.connection, "the GCS did not answer for actor '\(name)'", cause: "\(error)")
        }
        guard data.state == .alive else {
            throw RayError(.actorDied, "the actor named '\(name)' is not alive (\(data.state))")
        }
        let expected = String(describing: A.self)
        guard data.className == expected else {
            throw RayError(.system, "the actor named '\(name)' is a \(data.className), not a \(expected)")
        }
        let id = RayActorID(actorID: try RayCommon.ActorID(bytes: data.actorID), address: data.address,
                            className: data.className, maxConcurrency: Int(data.maxConcurrency))
        return try A.resolve(id: id, using: context.actorSystem)
    }

    private static func killActor<A: RayActor>(_ actor: A, in context: ActorContext) async throws {
        let worker = context.worker
        var request = Ray_Rpc_KillActorViaGcsRequest()
        request.actorID = Data(actor.id.actorID.bytes)
        do {
            _ = try await worker.gcsChannel().unary(GCSMethods.killActorViaGcs, request, options: CallOptions(timeout: .seconds(10)))
        } catch {
            throw RayError(.connection, "the GCS did not kill actor \(actor.id)", cause: "\(error)")
        }
        worker.actorKilled(actor.id.actorID, className: actor.id.className, cause: "it was killed by ray.kill")
    }
}

extension Ray {
    /// Submits one actor call without waiting for it and returns a reference to its result (Ray's
    /// `actor.method.remote(...)`), so calls pipeline and results pass to tasks without a fetch:
    /// `let ref = try await ray.submit { try await counter.add(1) }`. The closure must make exactly
    /// one call on an actor.
    public func submit<R: Codable & Sendable>(_ call: () async throws -> R) async throws -> ObjectRef<R> {
        try await Self.submit(call)
    }

    /// ``submit(_:)`` where no `Ray` value is at hand (in a task or an actor's method).
    public static func submit<R: Codable & Sendable>(_ call: () async throws -> R) async throws -> ObjectRef<R> {
        let worker = requireWorker()
        let capture = SubmissionCapture()
        let value: R
        do {
            value = try await RayActorSystem.$capture.withValue(capture) { try await call() }
        } catch is SubmissionCapture.Captured {
            guard let id = capture.id else { throw RayError(.system, "ray.submit captured no call") }
            return ObjectRef(adopting: id, worker: worker)
        }
        // The actor lives in this process: the call ran here; its value becomes an object.
        return ObjectRef(adopting: try await worker.put(value), worker: worker)
    }
}

extension Ray {
    /// A call of a method the actor's worker does not have (as a caller built from other sources
    /// would make): for tests of that error.
    @_spi(RayTesting)
    public func _callUnknownMethod<A: RayActor>(on actor: A) -> ObjectRef<Int> {
        let id = worker.submitActorTask(
            actor.id.actorID, address: actor.id.address, className: actor.id.className,
            method: "$s4Gone6ActorC6methodSiyYaKFTE", displayName: "\(actor.id.className).gone()",
            genericSubstitutions: [], arguments: [])
        return ObjectRef(adopting: id, worker: worker)
    }
}
