import Foundation
import RayCommon
import RayGCS
import RayProtos
import RayRaylet
import RayRPC
import RayServices
import Testing

/// The object manager with real raylets (and, for a source that breaks off mid-object, a source
/// raylet's PullObject served by a test server beside them).
@Suite(.serialized, .timeLimit(.minutes(1))) struct ObjectManagerTests {
    static let size = 12 * 1024 * 1024 + 123  // twelve 1 MiB chunks and a short one

    /// Raylets a (its object manager's outbound bytes capped at `sourceMaxBytesInFlight`) and b.
    func withRaylets(sourceMaxBytesInFlight: Int? = nil, _ body: (Raylet, RPCChannel, Raylet, RPCChannel) async throws -> Void) async throws {
        let gcs = try GCSServer()
        var options = Raylet.Options()
        options.resources = ["CPU": 1]
        options.objectStoreMemory = 64 * 1024 * 1024
        options.logDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("raylet-test-\(UUID().uuidString)").path
        let b = try await Raylet(gcsAddress: "127.0.0.1:\(gcs.port)", options: options)
        options.objectManagerMaxBytesInFlight = sourceMaxBytesInFlight
        let a = try await Raylet(gcsAddress: "127.0.0.1:\(gcs.port)", options: options)
        let channels = (try RPCChannel(host: "127.0.0.1", port: a.port), try RPCChannel(host: "127.0.0.1", port: b.port))
        do {
            try await body(a, channels.0, b, channels.1)
        } catch {
            await a.shutdown()
            await b.shutdown()
            await gcs.shutdown(grace: .zero)
            throw error
        }
        await a.shutdown()
        await b.shutdown()
        await gcs.shutdown(grace: .zero)
    }

    /// `count` bytes no two MiB of which are alike, made a word at a time (a byte-by-byte loop took
    /// tens of seconds in a debug build under AddressSanitizer on a loaded machine).
    static func pattern(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xA5, count: count)
        bytes.withUnsafeMutableBytes { raw in
            for word in 0..<count / 8 {
                raw.storeBytes(of: UInt64(word) &* 0x9E37_79B9_7F4A_7C15, toByteOffset: word * 8, as: UInt64.self)
            }
        }
        return bytes
    }
    static let defaultPattern = pattern(size)

    /// A chunk as PullObject sends it: where it starts, the object's size (little-endian), the bytes.
    static func chunk(at offset: Int, _ data: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: Int64(offset).littleEndian, Array.init) + withUnsafeBytes(of: Int64(size).littleEndian, Array.init) + data
    }

    /// Creates and seals an object of `size` patterned bytes in `raylet`'s store (with `marked`, the
    /// bytes are one value but the first of each MiB, which is its index: quick to make and check).
    func put(_ id: ObjectID, on raylet: Raylet, _ channel: RPCChannel, size: Int = size, marked: Bool = false) async throws {
        var create = Ray_Rpc_CreateObjectRequest()
        create.objectID = Data(id.bytes)
        create.dataSize = Int64(size)
        create.ownerWorkerID = Data(WorkerID.random().bytes)
        let offset = Int(try await channel.unary(NodeManagerMethods.createObject, create).offset)
        let base = UnsafeMutableRawPointer(mutating: raylet.objectStore.region.base) + offset
        if marked {
            memset(base, 0x5A, size)
            for mib in 0..<(size >> 20) { base.storeBytes(of: UInt8(truncatingIfNeeded: mib), toByteOffset: mib << 20, as: UInt8.self) }
        } else {
            let bytes = size == Self.size ? Self.defaultPattern : Self.pattern(size)
            bytes.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: size) }
        }
        var seal = Ray_Rpc_SealObjectRequest()
        seal.objectID = Data(id.bytes)
        _ = try await channel.unary(NodeManagerMethods.sealObject, seal)
    }

    func fetch(_ id: ObjectID, from address: String, node: NodeID, via channel: RPCChannel, size: Int = size,
               ownerNode: NodeID? = nil) async throws -> Ray_Rpc_FetchObjectReply {
        var request = Ray_Rpc_FetchObjectRequest()
        if let ownerNode { request.ownerNodeID = Data(ownerNode.bytes) }
        request.objectID = Data(id.bytes)
        request.source.nodeID = Data(node.bytes)
        request.source.rayletAddress = address
        request.source.size = Int64(size)
        request.ownerWorkerID = Data(WorkerID.random().bytes)
        return try await channel.unary(NodeManagerMethods.fetchObject, request, options: CallOptions(timeout: .seconds(20)))
    }

    func stats(_ channel: RPCChannel) async throws -> Ray_Rpc_GetNodeStatsReply {
        try await channel.unary(NodeManagerMethods.getNodeStats, Ray_Rpc_GetNodeStatsRequest())
    }

    @Test func anObjectIsPulledInChunksIntactAndOnlyOnceHoweverManyAsk() async throws {
        try await withRaylets { a, channelA, b, channelB in
            let id = ObjectID.random()
            try await put(id, on: a, channelA)
            let replies = try await withThrowingTaskGroup(of: Ray_Rpc_FetchObjectReply.self) { group in
                for _ in 0..<3 { group.addTask { try await fetch(id, from: "127.0.0.1:\(a.port)", node: a.nodeID, via: channelB) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(Set(replies.map(\.offset)).count == 1, "one copy for three askers")
            let copy = UnsafeRawBufferPointer(start: b.objectStore.region.base + Int(replies[0].offset), count: Int(replies[0].size))
            #expect(copy.count == Self.size)
            #expect(Self.defaultPattern.withUnsafeBytes { memcmp($0.baseAddress!, copy.baseAddress!, Self.size) } == 0, "every byte arrived in place")
            #expect(try await stats(channelB).numObjects == 1)
        }
    }

    @Test func aSourceThatBreaksOffMidObjectFailsThePullAndLeavesNothingBehind() async throws {
        try await withRaylets { _, _, b, channelB in
            // A source raylet that sends two good chunks of the three, then fails.
            var router = RPCRouter()
            router.registerRawServerStreaming(path: NodeManagerMethods.pullObject.path, request: Ray_Rpc_PullObjectRequest.self) { _, writer, _ in
                for index in 0..<2 {
                    try await writer.write(Self.chunk(at: index * 5 * 1024 * 1024, [UInt8](repeating: 7, count: 5 * 1024 * 1024)))
                }
                throw RPCError(code: .unavailable, message: "the source node went away")
            }
            let breaking = try RPCServer(host: "127.0.0.1", port: 0, router: router)
            // And one whose chunk does not fit the object.
            var lyingRouter = RPCRouter()
            lyingRouter.registerRawServerStreaming(path: NodeManagerMethods.pullObject.path, request: Ray_Rpc_PullObjectRequest.self) { _, writer, _ in
                try await writer.write(Self.chunk(at: 0, [1, 2, 3]))  // a good start, then one past the end
                try await writer.write(Self.chunk(at: 3, [UInt8](repeating: 1, count: Self.size)))
            }
            let lying = try RPCServer(host: "127.0.0.1", port: 0, router: lyingRouter)
            let id = ObjectID.random()
            let started = ContinuousClock.now
            await #expect {
                _ = try await fetch(id, from: "127.0.0.1:\(breaking.port)", node: .random(), via: channelB)
            } throws: { error in
                let message = (error as? RPCError)?.message ?? "\(error)"
                return message.contains("all copies of object") && message.contains("cannot be reached")
            }
            #expect(ContinuousClock.now - started < .seconds(10), "no hang")
            await #expect {
                _ = try await fetch(id, from: "127.0.0.1:\(lying.port)", node: .random(), via: channelB)
            } throws: { error in
                (error as? RPCError)?.code == .dataLoss && "\(error)".contains("does not fit")
            }
            await #expect(throws: RPCError.self) {
                _ = try await fetch(id, from: "127.0.0.1:1", node: .random(), via: channelB)
            }
            // Nothing half-written is visible, and the store is as it was.
            #expect(b.objectStore.get(id) == nil)
            let after = try await stats(channelB)
            #expect(after.numObjects == 0 && after.objectStoreUsed == 0, "\(after)")
            await breaking.shutdown(grace: .zero)
            await lying.shutdown(grace: .zero)
        }
    }

    /// Two objects pulled from one node at once: within its `object_manager_max_bytes_in_flight`
    /// (here one byte, so one stream at a time) the streams take turns and both arrive intact;
    /// with Ray's default of 2 GiB they run side by side.
    @Test(arguments: [1, nil] as [Int?])
    func pullsFromOneNodeStayWithinItsBytesInFlight(cap: Int?) async throws {
        let size = 24 << 20
        try await withRaylets(sourceMaxBytesInFlight: cap) { a, channelA, b, channelB in
            let ids = [ObjectID.random(), ObjectID.random()]
            for id in ids { try await put(id, on: a, channelA, size: size, marked: true) }
            let replies = try await withThrowingTaskGroup(of: Ray_Rpc_FetchObjectReply.self) { group in
                for id in ids { group.addTask { try await fetch(id, from: "127.0.0.1:\(a.port)", node: a.nodeID, via: channelB, size: size) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for reply in replies {
                let copy = UnsafeRawBufferPointer(start: b.objectStore.region.base + Int(reply.offset), count: Int(reply.size))
                #expect(copy.count == size)
                #expect((0..<(size >> 20)).allSatisfy { copy[$0 << 20] == UInt8($0) && copy[($0 << 20) + 1] == 0x5A } && copy[size - 1] == 0x5A)
            }
            // One stream's share: its window (4 MiB) and a chunk (1 MiB) with its header.
            let oneStream = Int64(min(size, 4 << 20 + 1 << 20) + 16)
            let peak = try await stats(channelA).objectManagerPeakBytesInFlight
            if cap != nil {
                #expect(peak == oneStream, "one stream at a time: \(peak)")
            } else {
                #expect(peak == 2 * oneStream, "both at once: \(peak)")
            }
        }
    }

    /// A copy pulled for an owner on a third node goes when that node dies (its owner died with it);
    /// a copy whose owner lives on stays.
    @Test func copiesForOwnersOnADeadNodeGoWithIt() async throws {
        try await withRaylets { a, channelA, b, channelB in
            var options = Raylet.Options()
            options.resources = ["CPU": 1]
            options.objectStoreMemory = 16 * 1024 * 1024
            options.logDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("raylet-test-\(UUID().uuidString)").path
            let c = try await Raylet(gcsAddress: a.gcsAddress, options: options)
            let orphan = ObjectID.random(), kept = ObjectID.random()
            try await put(orphan, on: a, channelA)
            try await put(kept, on: a, channelA)
            _ = try await fetch(orphan, from: "127.0.0.1:\(a.port)", node: a.nodeID, via: channelB, ownerNode: c.nodeID)
            _ = try await fetch(kept, from: "127.0.0.1:\(a.port)", node: a.nodeID, via: channelB, ownerNode: a.nodeID)
            #expect(try await stats(channelB).numObjects == 2)
            await c.shutdown(reason: "the test ended it")
            let deadline = ContinuousClock.now + .seconds(10)
            while try await stats(channelB).numObjects != 1, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(b.objectStore.get(orphan) == nil, "the dead node's owner's copy is gone")
            let stillThere = b.objectStore.get(kept)
            #expect(stillThere != nil, "the live owner's copy stays")
            if stillThere != nil { b.objectStore.release(kept) }
        }
    }

    @Test func badFetchesAreRejected() async throws {
        try await withRaylets { _, _, b, channelB in
            var request = Ray_Rpc_FetchObjectRequest()
            request.objectID = Data([1, 2])
            await #expect { _ = try await channelB.unary(NodeManagerMethods.fetchObject, request) } throws: {
                ($0 as? RPCError)?.code == .invalidArgument
            }
            request.objectID = Data(ObjectID.random().bytes)
            request.ownerWorkerID = Data(WorkerID.random().bytes)
            await #expect { _ = try await channelB.unary(NodeManagerMethods.fetchObject, request) } throws: {
                ($0 as? RPCError)?.code == .invalidArgument && "\($0)".contains("raylet address")
            }
            // Objects are served on the object manager's own port, not the raylet's.
            let objectManagerB = try RPCChannel(host: "127.0.0.1", port: b.objectManagerPort)
            var pull = Ray_Rpc_PullObjectRequest()
            pull.objectID = Data(ObjectID.random().bytes)
            await #expect {
                try await objectManagerB.rawServerStreaming(path: NodeManagerMethods.pullObject.path, pull) { chunks in for try await _ in chunks {} }
            } throws: { ($0 as? RPCError)?.code == .notFound }
            #expect(b.objectManagerPort != b.port)
            await #expect {
                try await channelB.rawServerStreaming(path: NodeManagerMethods.pullObject.path, pull) { chunks in for try await _ in chunks {} }
            } throws: { ($0 as? RPCError)?.code == .unimplemented }
        }
    }
}
