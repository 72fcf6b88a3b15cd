import Foundation
import RayCommon
import RayObjectStore
import Testing

private func storeName() -> String { "swift-ray-test-\(getpid())-\(UUID().uuidString.prefix(8))" }

@Suite struct ObjectStoreTests {
    @Test func createSealGetAcrossTwoMappings() throws {
        let store = try ObjectStore(name: storeName(), capacity: 1 << 20)
        let id = ObjectID.random()
        let buffer = try store.create(id, size: 1000)
        for i in 0..<1000 { buffer[i] = UInt8(i % 251) }
        #expect(store.get(id) == nil, "an unsealed object is not readable")
        try store.seal(id)

        // A second mapping of the same region (as a worker process has) sees the bytes in place.
        let worker = try SharedMemoryRegion(opening: store.region.name)
        let location = try #require(store.get(id))
        let view = UnsafeRawBufferPointer(start: worker.base + location.offset, count: location.size)
        #expect(Array(view) == (0..<1000).map { UInt8($0 % 251) })
        store.release(id)
    }

    @Test func fullStoreThrowsObjectStoreFull() throws {
        let store = try ObjectStore(name: storeName(), capacity: 4096)
        _ = try store.create(.random(), size: 3000)
        do {
            _ = try store.create(.random(), size: 2000)
            Issue.record("expected ObjectStoreFullError")
        } catch {
            #expect(error.kind == .objectStoreFull)
            #expect(error.message.contains("2000 bytes"))
        }
        #expect(store.objectCount == 1)
    }

    @Test func deleteWaitsForReadersAndFreesTheSpace() throws {
        let store = try ObjectStore(name: storeName(), capacity: 4096)
        let id = ObjectID.random()
        _ = try store.create(id, size: 4096)
        try store.seal(id)
        #expect(store.get(id) != nil)
        #expect(store.delete(id))
        #expect(store.get(id) == nil, "a deleted object is not handed out again")
        #expect(store.usedBytes == 4096, "a pinned object keeps its space")
        store.release(id)
        #expect(store.usedBytes == 0)
        #expect(store.objectCount == 0)
        _ = try store.create(.random(), size: 4096)
        #expect(!store.delete(.random()))
    }

    @Test func duplicateAndUnknownIDsAreErrors() throws {
        let store = try ObjectStore(name: storeName(), capacity: 4096)
        let id = ObjectID.random()
        _ = try store.create(id, size: 10)
        #expect(throws: RayError.self) { _ = try store.create(id, size: 10) }
        #expect(throws: RayError.self) { try store.seal(.random()) }
    }

    @Test func regionIsRemovedWithItsOwner() throws {
        let name = storeName()
        do {
            let store = try ObjectStore(name: name, capacity: 4096)
            #expect(FileManager.default.fileExists(atPath: "/dev/shm/\(name)"))
            _ = store
        }
        #expect(!FileManager.default.fileExists(atPath: "/dev/shm/\(name)"))
        #expect(throws: RayError.self) { _ = try SharedMemoryRegion(opening: name) }
    }
}
