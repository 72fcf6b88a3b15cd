#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayCoreWorker
import RayProtos

/// A future for an immutable value of type `T` somewhere in the cluster: a task's result or a put.
/// Pass it to other tasks (they receive the value) or `get` it. While any `ObjectRef` to an object is
/// alive (in this process, or as an argument of a task in flight) the object is kept; after that it
/// is freed.
public final class ObjectRef<T: Codable & Sendable>: @unchecked Sendable, Hashable, Codable, CustomStringConvertible {
    public let id: ObjectID
    @usableFromInline let worker: CoreWorker
    /// Who owns the object, when it is not this process.
    let owner: Ray_Rpc_Address?

    /// Adopts the local reference the core worker took for `id`.
    @usableFromInline
    init(adopting id: ObjectID, worker: CoreWorker) {
        self.id = id
        self.worker = worker
        self.owner = nil
    }

    deinit { worker.removeLocalReference(id) }

    /// The value, waiting for it up to `timeout` (nil: as long as it takes). Throws the task's
    /// `RayTaskError` if it failed, `RayError` (`GetTimeoutError`) on timeout.
    @inlinable
    public func get(timeout: Duration? = nil) async throws -> T {
        let resolved = try await worker.get([id], timeout: timeout)
        return try Self.decode(resolved[0], id: id)
    }

    @inlinable
    static func decode(_ resolved: ResolvedObject, id: ObjectID) throws -> T {
        do {
            return try resolved.withBytes { try BinaryDecoder().decode(T.self, from: $0) }
        } catch {
            throw RayError(.serialization, "object \(id) does not decode as \(T.self)", cause: "\(error)")
        }
    }

    @usableFromInline var argument: TaskArgument { .reference(id, owner: owner) }

    public static func == (lhs: ObjectRef, rhs: ObjectRef) -> Bool { lhs.id == rhs.id }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
    public var description: String { "ObjectRef<\(T.self)>(\(id))" }

    // MARK: Codable (a ref inside a value that crosses processes)

    private enum CodingKeys: String, CodingKey { case id, owner }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        let owner = self.owner ?? worker.address
        try container.encode(try owner.serializedBytes() as [UInt8], forKey: .owner)
        ReferenceTracking.encoding?.add(id, owner: self.owner)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(ObjectID.self, forKey: .id)
        let ownerBytes = try container.decode([UInt8].self, forKey: .owner)
        guard let worker = Ray.currentWorker else {
            throw RayError(.system, "an ObjectRef can only be decoded in a process running Ray")
        }
        let owner = try Ray_Rpc_Address(serializedBytes: ownerBytes)
        self.worker = worker
        self.owner = owner.workerID == worker.address.workerID ? nil : owner
        worker.addLocalReference(id, owner: self.owner)
        ReferenceTracking.decoding?.add(id, owner: self.owner)
    }
}

extension ObjectRef {
    /// The elements of an array object read in place from the node's shared-memory store (no copy)
    /// when the object lives there, else from this process's memory.
    @inlinable
    public func getBuffer<Element: _TrivialScalar>(timeout: Duration? = nil) async throws -> ObjectBuffer<Element>
    where T == [Element] {
        let resolved = try await worker.get([id], timeout: timeout)
        return try ObjectBuffer(resolved[0], keeping: self)
    }
}

extension ObjectRef where T == Data {
    /// The bytes, without a copy when the object lives in the node's shared-memory store (the
    /// `Data` keeps the object alive).
    @inlinable
    public func getData(timeout: Duration? = nil) async throws -> Data {
        let resolved = try await worker.get([id], timeout: timeout)
        guard case .shared = resolved[0] else { return try Self.decode(resolved[0], id: id) }
        let buffer = try ObjectBuffer<UInt8>(resolved[0], keeping: self)
        return buffer.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress, bytes.count > 0 else { return Data() }
            return Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: bytes.count,
                        deallocator: .custom { _, _ in withExtendedLifetime(buffer) {} })
        }
    }
}

extension Array {
    /// The values of these refs, in order, in one batch (see ``Ray/get(_:timeout:)``). Works where no
    /// `Ray` is at hand, such as inside a task given an array of refs.
    @inlinable
    public func get<T>(timeout: Duration? = nil) async throws -> [T] where Element == ObjectRef<T> {
        guard let worker = first?.worker else { return [] }
        let resolved = try await worker.get(map(\.id), timeout: timeout)
        return try zip(resolved, self).map { try ObjectRef<T>.decode($0, id: $1.id) }
    }
}
