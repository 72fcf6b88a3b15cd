import Distributed
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayCoreWorker
import RayProtos
import Synchronization

/// A Ray actor: a Swift `distributed actor` whose actor system is Ray's. It is created on a worker of
/// the cluster (``Ray/actor(_:args:options:)``) and its `distributed func`s run there, one call at a
/// time in each caller's order unless its options allow concurrency. The type must be internal or
/// public and declared at file scope: workers find it by its mangled name in the same executable.
///
/// ```swift
/// distributed actor Counter: RayActor {
///     var value: Int
///     init(actorSystem: RayActorSystem, args start: Int) { self.actorSystem = actorSystem; value = start }
///     distributed func add(_ n: Int) -> Int { value += n; return value }
/// }
/// ```
public protocol RayActor: DistributedActor where ActorSystem == RayActorSystem {
    /// What the initializer takes (several values: a tuple-like `Codable` struct).
    associatedtype CreationArguments: Codable & Sendable
    init(actorSystem: RayActorSystem, args: CreationArguments) async throws
}

extension RayActor {
    /// Runs the initializer on this worker with encoded creation arguments.
    static func _rayCreate(system: RayActorSystem, arguments: [ArgumentValue], typeName: String) async throws -> any RayActor {
        let args = try decodeArgument(CreationArguments.self, arguments, 0, function: "\(typeName).init")
        return try await Self(actorSystem: system, args: args)
    }
}

/// An actor's identity: its ActorID and where its worker listens (so calls go straight there).
public struct RayActorID: Hashable, Sendable, Codable, CustomStringConvertible {
    public let actorID: ActorID
    let address: Ray_Rpc_Address
    /// The actor type's readable name, for messages.
    let className: String
    /// Calls it may run at once (callers keep that many in flight).
    let maxConcurrency: Int

    init(actorID: ActorID, address: Ray_Rpc_Address, className: String, maxConcurrency: Int = 1) {
        self.actorID = actorID
        self.address = address
        self.className = className
        self.maxConcurrency = maxConcurrency
    }

    public static func == (lhs: RayActorID, rhs: RayActorID) -> Bool { lhs.actorID == rhs.actorID }
    public func hash(into hasher: inout Hasher) { hasher.combine(actorID) }
    public var description: String { "\(className)(\(actorID))" }

    private enum CodingKeys: String, CodingKey { case actorID, address, className, maxConcurrency }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(actorID, forKey: .actorID)
        try container.encode(try address.serializedBytes() as [UInt8], forKey: .address)
        try container.encode(className, forKey: .className)
        try container.encode(maxConcurrency, forKey: .maxConcurrency)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        actorID = try container.decode(ActorID.self, forKey: .actorID)
        address = try Ray_Rpc_Address(serializedBytes: try container.decode([UInt8].self, forKey: .address))
        className = try container.decode(String.self, forKey: .className)
        maxConcurrency = try container.decode(Int.self, forKey: .maxConcurrency)
    }
}

/// Ray's `DistributedActorSystem`: a proxy's calls become actor tasks sent to the actor's worker; on
/// that worker, the system creates the actor from its creation task and runs the calls pushed to it.
public final class RayActorSystem: DistributedActorSystem, ActorHost, Sendable {
    public typealias ActorID = RayActorID
    public typealias SerializationRequirement = Codable
    public typealias InvocationEncoder = RayInvocationEncoder
    public typealias InvocationDecoder = RayInvocationDecoder
    public typealias ResultHandler = RayResultHandler

    @usableFromInline let worker: CoreWorker
    /// Actors hosted in this process, held strongly until they are killed with their process.
    private let hosted = Mutex<[RayCommon.ActorID: any DistributedActor]>([:])

    /// The ID the actor being created on this worker gets (set around its initializer).
    @TaskLocal static var creating: RayActorID?
    /// Set by ``Ray/submit(_:)``: the call is submitted and its result's ID recorded, not awaited.
    @TaskLocal static var capture: SubmissionCapture?

    init(worker: CoreWorker) {
        self.worker = worker
    }

    // MARK: identities

    public func resolve<Act>(id: RayActorID, as actorType: Act.Type) throws -> Act?
    where Act: DistributedActor, Act.ID == RayActorID {
        // A hosted actor is itself; any other is a proxy whose calls go to its worker.
        hosted.withLock { $0[id.actorID] } as? Act
    }

    public func assignID<Act>(_ actorType: Act.Type) -> RayActorID where Act: DistributedActor, Act.ID == RayActorID {
        if let id = Self.creating { return id }
        // An actor made with a plain initializer outside a creation task lives only in this process.
        return RayActorID(actorID: .random(job: worker.jobID), address: worker.address, className: "\(Act.self)")
    }

    public func actorReady<Act>(_ actor: Act) where Act: DistributedActor, Act.ID == RayActorID {
        hosted.withLock { $0[actor.id.actorID] = actor }
    }

    public func resignID(_ id: RayActorID) {
        _ = hosted.withLock { $0.removeValue(forKey: id.actorID) }
    }

    public func makeInvocationEncoder() -> RayInvocationEncoder { RayInvocationEncoder() }

    // MARK: calls (caller side)

    // Inlinable, so the actor's module specializes the result's decoding for `Res`.
    @inlinable
    public func remoteCall<Act, Err, Res>(
        on actor: Act, target: RemoteCallTarget, invocation: inout RayInvocationEncoder,
        throwing: Err.Type, returning: Res.Type
    ) async throws -> Res where Act: DistributedActor, Act.ID == RayActorID, Err: Error, Res: Codable {
        let id = try submitCall(actor.id, target: target, invocation: invocation)
        let resolved: [ResolvedObject]
        do {
            resolved = try await worker.get([id], timeout: nil)
        } catch {
            worker.removeLocalReference(id)
            throw error
        }
        defer { worker.removeLocalReference(id) }
        do {
            return try resolved[0].withBytes { try BinaryDecoder().decode(Res.self, from: $0) }
        } catch {
            throw Self.undecodableResult(actor.id, target, Res.self, error)
        }
    }

    @usableFromInline
    static func undecodableResult(_ id: RayActorID, _ target: RemoteCallTarget, _ type: Any.Type, _ error: any Error) -> RayError {
        RayError(.serialization, "the result of \(id.className).\(methodName(target)) does not decode as \(type)", cause: "\(error)")
    }

    public func remoteCallVoid<Act, Err>(
        on actor: Act, target: RemoteCallTarget, invocation: inout RayInvocationEncoder, throwing: Err.Type
    ) async throws where Act: DistributedActor, Act.ID == RayActorID, Err: Error {
        let id = try submitCall(actor.id, target: target, invocation: invocation)
        defer { worker.removeLocalReference(id) }
        _ = try await worker.get([id], timeout: nil)
    }

    /// Submits the call and returns its result's ID; inside ``Ray/submit(_:)`` it hands the ID over
    /// and throws instead (the call's result becomes the caller's object).
    @usableFromInline
    func submitCall(_ id: RayActorID, target: RemoteCallTarget, invocation: RayInvocationEncoder) throws -> ObjectID {
        let method = Self.methodName(target)
        let objectID = worker.submitActorTask(
            id.actorID, address: id.address, className: id.className, maxConcurrency: id.maxConcurrency, method: target.identifier,
            displayName: "\(id.className).\(method)", genericSubstitutions: invocation.genericSubstitutions,
            arguments: invocation.arguments)
        if let capture = Self.capture {
            capture.record(objectID)
            throw SubmissionCapture.Captured()
        }
        return objectID
    }

    /// "add(_:)" from a target's identifier, for messages.
    @usableFromInline
    static func methodName(_ target: RemoteCallTarget) -> String {
        let description = target.description
        if let dot = description.lastIndex(of: "."), !description.hasPrefix("$s") {
            return String(description[description.index(after: dot)...])
        }
        return description
    }

    // MARK: hosting (the actor's worker)

    public func createActor(_ spec: Ray_Rpc_ActorCreationTaskSpec, arguments: [ArgumentValue]) async throws {
        guard let type = _typeByName(spec.typeName) else {
            throw RayError(.system, "no type \(spec.className) (\(spec.typeName)) in this executable: actor types must be internal or public and declared at file scope")
        }
        guard let actorType = type as? any RayActor.Type else {
            throw RayError(.system, "\(spec.className) is not a RayActor")
        }
        let id = RayActorID(actorID: try RayCommon.ActorID(bytes: spec.actorID), address: worker.address, className: spec.className)
        _ = try await Self.$creating.withValue(id) {
            try await actorType._rayCreate(system: self, arguments: arguments, typeName: spec.className)
        }
    }

    public func callActor(_ actorID: RayCommon.ActorID, method: String, genericSubstitutions: [String], arguments: [ArgumentValue])
        async throws -> [EncodedResult]
    {
        guard let actor = hosted.withLock({ $0[actorID] }) else {
            throw RayError(.actorDied, "actor \(actorID) is not hosted by this worker")
        }
        var decoder = RayInvocationDecoder(arguments: arguments, substitutions: genericSubstitutions, method: method)
        let handler = RayResultHandler()
        do {
            if genericSubstitutions.isEmpty, let signature = DistributedTargets.signature(of: method) {
                try await DistributedTargets.execute(on: actor, method: method, signature: signature, decoder: &decoder, handler: handler)
            } else {
                try await executeDistributedTarget(on: actor, target: RemoteCallTarget(method), invocationDecoder: &decoder, handler: handler)
            }
            return try handler.take()
        } catch let error as ExecuteDistributedTargetError {
            // (The runtime reports a missing accessor through the handler's onThrow.)
            throw RayError(.system, "the actor's type \(type(of: actor)) has no distributed method \(method) in this executable (was the caller built from other sources?): \(error.message)")
        }
    }
}

/// Records a call's arguments as task arguments.
public struct RayInvocationEncoder: DistributedTargetInvocationEncoder {
    public typealias SerializationRequirement = Codable
    @usableFromInline var arguments: [TaskArgument] = []
    var genericSubstitutions: [String] = []

    public mutating func recordGenericSubstitution<T>(_ type: T.Type) throws {
        genericSubstitutions.append(_mangledTypeName(T.self) ?? _typeName(T.self))
    }

    @inlinable
    public mutating func recordArgument<Value: Codable>(_ argument: RemoteCallArgument<Value>) throws {
        arguments.append(encodeArgument(argument.value, function: "a distributed call", index: arguments.count + 1))
    }

    public mutating func recordReturnType<R: Codable>(_ type: R.Type) throws {}
    public mutating func recordErrorType<E: Error>(_ type: E.Type) throws {}
    public mutating func doneRecording() throws {}
}

/// Reads a call's arguments on the actor's worker.
public struct RayInvocationDecoder: DistributedTargetInvocationDecoder {
    public typealias SerializationRequirement = Codable
    let arguments: [ArgumentValue]
    let substitutions: [String]
    let method: String
    var index = 0

    init(arguments: [ArgumentValue], substitutions: [String], method: String) {
        self.arguments = arguments
        self.substitutions = substitutions
        self.method = method
    }

    public mutating func decodeGenericSubstitutions() throws -> [Any.Type] {
        try substitutions.map { name in
            guard let type = _typeByName(name) else {
                throw RayError(.serialization, "generic argument type \(name) is not in this executable")
            }
            return type
        }
    }

    public mutating func decodeNextArgument<Argument: Codable>() throws -> Argument {
        defer { index += 1 }
        return try decodeArgument(Argument.self, arguments, index, function: method)
    }

    public mutating func decodeErrorType() throws -> Any.Type? { nil }
    public mutating func decodeReturnType() throws -> Any.Type? { nil }
}

/// Collects what a method returned (encoded) or threw, on the actor's worker.
public final class RayResultHandler: DistributedTargetInvocationResultHandler, @unchecked Sendable {
    public typealias SerializationRequirement = Codable
    @usableFromInline var outcome: Result<[EncodedResult], any Error>?

    @inlinable
    public func onReturn<Success: Codable>(value: Success) async throws {
        outcome = Result { try encodeResult(value, function: "") }
    }

    public func onReturnVoid() async throws {
        outcome = .success([.bytes([])])
    }

    public func onThrow<Err: Error>(error: Err) async throws {
        outcome = .failure(error)
    }

    func take() throws -> [EncodedResult] {
        guard let outcome else { throw RayError(.system, "the method produced no result") }
        return try outcome.get()
    }
}

/// Where ``Ray/submit(_:)`` gets the ID of the call it captured.
final class SubmissionCapture: Sendable {
    struct Captured: Error {}
    private let lock = Mutex<ObjectID?>(nil)
    func record(_ id: ObjectID) { lock.withLock { $0 = id } }
    var id: ObjectID? { lock.withLock { $0 } }
}

// MARK: executing a target with its signature looked up once

/// `executeDistributedTarget` demangles the target's parameter and return types on every call (a
/// third of an actor call's time on the worker); for a non-generic target we read them once and call
/// the same runtime entry points the standard library's implementation calls.
enum DistributedTargets {
    /// Kept for the life of the process (one per method called), so a call passes them as they are.
    struct Signature: @unchecked Sendable {
        var name: UnsafeMutableBufferPointer<UInt8>
        var parameterTypes: UnsafeMutableBufferPointer<Any.Type>
        var returnType: Any.Type
    }

    private static let signatures = Mutex<[String: Signature]>([:])

    /// The target's parameter and return types; nil for a generic target or an unknown one (the
    /// standard path then reports it).
    static func signature(of method: String) -> Signature? {
        if let known = signatures.withLock({ $0[method] }) { return known }
        let name = Array(method.utf8)
        let signature: Signature? = name.withUnsafeBufferPointer { name -> Signature? in
            guard let base = name.baseAddress, !name.isEmpty else { return nil }
            let length = UInt(name.count)
            guard _rayTargetGenericEnvironment(base, length) == nil else { return nil }
            let count = _rayTargetParameterCount(base, length)
            guard count >= 0 else { return nil }
            var types = [Any.Type](repeating: Void.self, count: Int(count))
            let decoded = types.withUnsafeMutableBufferPointer { buffer in
                _rayTargetParameterTypes(base, length, nil, nil, UnsafeMutableRawPointer(buffer.baseAddress!), Int(count))
            }
            guard decoded == count, let returnType = _rayTargetReturnType(base, length, nil, nil) else { return nil }
            let nameCopy = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: name.count)
            _ = nameCopy.initialize(from: name)
            let typesCopy = UnsafeMutableBufferPointer<Any.Type>.allocate(capacity: max(1, types.count))
            _ = typesCopy.initialize(from: types)
            return Signature(name: nameCopy, parameterTypes: typesCopy, returnType: returnType)
        }
        if let signature { signatures.withLock { $0[method] = signature } }
        return signature
    }

    static func execute(on actor: any DistributedActor, method: String, signature: Signature,
                        decoder: inout RayInvocationDecoder, handler: RayResultHandler) async throws {
        func layout<T>(_: T.Type) -> (size: Int, alignment: Int) { (MemoryLayout<T>.size, MemoryLayout<T>.alignment) }
        let (size, alignment) = layout(signature.returnType)
        let result = UnsafeMutableRawPointer.allocate(byteCount: max(1, size), alignment: max(1, alignment))
        defer { result.deallocate() }
        do {
            try await _rayExecuteTarget(
                on: actor, signature.name.baseAddress!, UInt(signature.name.count), argumentDecoder: &decoder,
                argumentTypes: UnsafeMutableRawPointer(signature.parameterTypes.baseAddress!),
                resultBuffer: result, substitutions: nil, witnessTables: nil, numWitnessTables: 0)
        } catch {
            try await handler.onThrow(error: error)
            return
        }
        if signature.returnType == Void.self {
            try await handler.onReturnVoid()
            return
        }
        guard let codable = signature.returnType as? any Codable.Type else {
            throw RayError(.serialization, "the result type \(signature.returnType) of \(method) is not Codable")
        }
        func deliver<R: Codable>(_: R.Type) async throws {
            try await handler.onReturn(value: result.assumingMemoryBound(to: R.self).move())
        }
        try await deliver(codable)
    }
}

@_silgen_name("swift_distributed_getGenericEnvironment")
private func _rayTargetGenericEnvironment(_ name: UnsafePointer<UInt8>, _ length: UInt) -> UnsafeRawPointer?

@_silgen_name("swift_func_getParameterCount")
private func _rayTargetParameterCount(_ name: UnsafePointer<UInt8>, _ length: UInt) -> Int32

@_silgen_name("swift_func_getParameterTypeInfo")
private func _rayTargetParameterTypes(
    _ name: UnsafePointer<UInt8>, _ length: UInt, _ genericEnvironment: UnsafeRawPointer?,
    _ genericArguments: UnsafeRawPointer?, _ types: UnsafeMutableRawPointer, _ typesLength: Int) -> Int32

@_silgen_name("swift_func_getReturnTypeInfo")
private func _rayTargetReturnType(
    _ name: UnsafePointer<UInt8>, _ length: UInt, _ genericEnvironment: UnsafeRawPointer?,
    _ genericArguments: UnsafeRawPointer?) -> Any.Type?

@_silgen_name("swift_distributed_execute_target")
private func _rayExecuteTarget<D: DistributedTargetInvocationDecoder>(
    on actor: AnyObject, _ name: UnsafePointer<UInt8>, _ length: UInt, argumentDecoder: inout D,
    argumentTypes: UnsafeMutableRawPointer, resultBuffer: UnsafeMutableRawPointer,
    substitutions: UnsafeRawPointer?, witnessTables: UnsafeRawPointer?, numWitnessTables: UInt) async throws
