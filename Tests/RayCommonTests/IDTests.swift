import Foundation
import RayCommon
import Testing

@Suite struct IDTests {
    @Test func sizesFollowRaysSpecification() {
        #expect(JobID.random().bytes.count == 4)
        #expect(ActorID.random().bytes.count == 16)
        #expect(TaskID.random().bytes.count == 24)
        #expect(ObjectID.random().bytes.count == 28)
        #expect(NodeID.random().bytes.count == 28)
        #expect(PlacementGroupID.random().bytes.count == 18)
    }

    @Test func idsCompose() {
        let job = JobID(number: 7)
        #expect(job.number == 7)
        let actor = ActorID.random(job: job)
        #expect(actor.jobID == job)
        let task = TaskID.random(actor: actor)
        #expect(task.actorID == actor)
        #expect(task.jobID == job)
        let normal = TaskID.random(job: job)
        #expect(normal.actorID == ActorID.none(job: job))
        let object = ObjectID(task: task, index: 3)
        #expect(object.taskID == task)
        #expect(object.index == 3)
        #expect(object.jobID == job)
        #expect(TaskID.driver(job: job).jobID == job)
    }

    @Test func hexAndBytesRoundTrip() throws {
        let id = ObjectID.random()
        #expect(try ObjectID(hex: id.hex) == id)
        #expect(try ObjectID(bytes: id.bytes) == id)
        #expect(id.hex.count == 56)
        #expect(ObjectID.nil.isNil)
        #expect(!ObjectID(task: .random(), index: 1).isNil)
    }

    @Test func badInputIsAnError() {
        #expect(throws: IDError.self) { _ = try NodeID(bytes: [1, 2, 3]) }
        #expect(throws: IDError.self) { _ = try JobID(hex: "zzzzzzzz") }
        #expect(throws: IDError.self) { _ = try JobID(hex: "0102") }
    }

    @Test func hashingAndEquality() {
        let a = TaskID.random()
        let b = try! TaskID(bytes: a.bytes)
        #expect(a == b)
        #expect(Set([a, b]).count == 1)
        #expect(a != TaskID.random())
    }

    @Test func codable() throws {
        let id = WorkerID.random()
        let bytes = try BinaryEncoder().encode(id)
        #expect(bytes.count == 29)
        #expect(try BinaryDecoder().decode(WorkerID.self, from: bytes) == id)
        #expect(throws: SerializationError.self) {
            _ = try BinaryDecoder().decode(JobID.self, from: try BinaryEncoder().encode([UInt8](repeating: 1, count: 5)))
        }
    }
}

@Suite struct ConfigTests {
    @Test func defaultsEnvironmentAndOverrides() throws {
        let none = RayConfig(environment: { _ in nil })
        #expect(none[RayConfig.maxDirectCallObjectSize] == 100 * 1024)
        let env = RayConfig(environment: { $0 == "RAY_max_direct_call_object_size" ? " 2048 " : nil })
        #expect(try env.value(RayConfig.maxDirectCallObjectSize) == 2048)
        let both = RayConfig(overrides: ["max_direct_call_object_size": "1"], environment: { _ in "2048" })
        #expect(both[RayConfig.maxDirectCallObjectSize] == 1)
    }

    @Test func badValuesNameTheSetting() {
        let config = RayConfig(environment: { $0 == "RAY_gcs_server_port" ? "six" : nil })
        do {
            _ = try config.value(RayConfig.gcsServerPort)
            Issue.record("expected an error")
        } catch {
            #expect(error.setting == "RAY_gcs_server_port")
            #expect(error.description.contains("six"))
        }
        #expect(config[RayConfig.gcsServerPort] == 6379)
    }

    @Test func randomIDsAreDistinctAndKeepTheirSize() throws {
        let ids = (0..<100_000).map { _ in ObjectID.random() }
        #expect(ids.allSatisfy { $0.bytes.count == 28 })  // one expectation, not 100,000
        #expect(Set(ids).count == 100_000)
        // Bytes past the size stay zero: an ID read back from its bytes is the same ID.
        let id = ObjectID.random()
        #expect(try ObjectID(bytes: id.bytes) == id)
        #expect(try JobID(bytes: JobID.random().bytes).bytes.count == 4)
    }

    @Test func idsReadFromDataAndSlices() throws {
        let id = TaskID.random()
        #expect(try TaskID(bytes: Data(id.bytes)) == id)
        #expect(try TaskID(bytes: ([0, 0] + id.bytes)[2...]) == id)
        #expect(throws: IDError.self) { try TaskID(bytes: Data(count: 5)) }
    }
}
