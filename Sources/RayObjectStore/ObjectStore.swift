import RayCommon
import Synchronization

/// A node's object store: immutable objects in one shared-memory region, created, sealed, read in
/// place while pinned, and deleted (once no reader pins them). Thread-safe; the raylet owns it.
public final class ObjectStore: Sendable {
    /// Where an object's bytes are in the region.
    public struct Location: Sendable, Hashable {
        public var offset: Int
        public var size: Int
    }

    private struct Entry {
        var location: Location
        var sealed = false
        var pins = 0
        var deletePending = false
    }

    private struct State {
        var allocator: ArenaAllocator
        var objects: [ObjectID: Entry] = [:]
    }

    public let region: SharedMemoryRegion
    private let state: Mutex<State>

    /// A store of `capacity` bytes in a new region named `name`.
    public init(name: String, capacity: Int) throws(RayError) {
        region = try SharedMemoryRegion(creating: name, size: capacity)
        state = Mutex(State(allocator: ArenaAllocator(capacity: capacity)))
    }

    public var capacity: Int { state.withLock { $0.allocator.capacity } }
    public var usedBytes: Int { state.withLock { $0.allocator.usedBytes } }
    public var objectCount: Int { state.withLock { $0.objects.count } }

    /// Reserves `size` bytes for `id`, to be written and then sealed. Throws ObjectStoreFullError when
    /// no free range is large enough.
    public func create(_ id: ObjectID, size: Int) throws(RayError) -> UnsafeMutableRawBufferPointer {
        let location = try state.withLock { s throws(RayError) -> Location in
            guard s.objects[id] == nil else {
                throw RayError(.objectExists, "object \(id) already exists in the store")
            }
            guard let offset = s.allocator.allocate(size) else {
                throw RayError(
                    .objectStoreFull,
                    "cannot fit \(size) bytes for object \(id): \(s.allocator.usedBytes) of \(s.allocator.capacity) bytes used, largest free block \(s.allocator.largestFreeBlock)")
            }
            let location = Location(offset: offset, size: size)
            s.objects[id] = Entry(location: location)
            return location
        }
        return UnsafeMutableRawBufferPointer(start: region.base + location.offset, count: size)
    }

    /// Makes a created object readable (and immutable).
    public func seal(_ id: ObjectID) throws(RayError) {
        try state.withLock { s throws(RayError) in
            guard s.objects[id] != nil else { throw RayError(.objectLost, "no object \(id) to seal") }
            s.objects[id]!.sealed = true
        }
    }

    /// Pins a sealed object and returns where it is; nil if it is not here (or not sealed yet).
    public func get(_ id: ObjectID) -> Location? {
        state.withLock { s -> Location? in
            guard var entry = s.objects[id], entry.sealed, !entry.deletePending else { return nil }
            entry.pins += 1
            s.objects[id] = entry
            return entry.location
        }
    }

    /// The bytes of a location in this process's mapping.
    public func bytes(at location: Location) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: region.base + location.offset, count: location.size)
    }

    /// Drops one pin; a delete waiting on it happens now.
    public func release(_ id: ObjectID) {
        state.withLock { s in
            guard var entry = s.objects[id], entry.pins > 0 else { return }
            entry.pins -= 1
            if entry.pins == 0, entry.deletePending {
                s.allocator.deallocate(entry.location.offset)
                s.objects[id] = nil
            } else {
                s.objects[id] = entry
            }
        }
    }

    /// Deletes an object; if readers pin it, once the last one releases it. False if unknown.
    @discardableResult
    public func delete(_ id: ObjectID) -> Bool {
        state.withLock { s -> Bool in
            guard var entry = s.objects[id] else { return false }
            if entry.pins > 0 {
                entry.deletePending = true
                s.objects[id] = entry
            } else {
                s.allocator.deallocate(entry.location.offset)
                s.objects[id] = nil
            }
            return true
        }
    }
}
