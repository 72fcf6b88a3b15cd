import Foundation
import RayCommon
import RayGCS
import RayProtos
import RayRaylet
import RayRPC
import RayServices
import Testing

/// The raylet's service with a real GCS and raylet: bad requests get clear statuses and break nothing.
@Suite(.timeLimit(.minutes(1))) struct NodeManagerServiceTests {
    /// A GCS and a raylet (2 CPUs, a small store) on 127.0.0.1:0, and a channel to the raylet.
    func withRaylet(_ body: (Raylet, RPCChannel) async throws -> Void) async throws {
        let gcs = try GCSServer()
        var options = Raylet.Options()
        options.resources = ["CPU": 2]
        options.objectStoreMemory = 4 * 1024 * 1024
        options.logDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("raylet-test-\(UUID().uuidString)").path
        let raylet = try await Raylet(gcsAddress: "127.0.0.1:\(gcs.port)", options: options)
        let channel = try RPCChannel(host: "127.0.0.1", port: raylet.port)
        do {
            try await body(raylet, channel)
        } catch {
            await raylet.shutdown()
            await gcs.shutdown(grace: .zero)
            throw error
        }
        await raylet.shutdown()
        await gcs.shutdown(grace: .zero)
        try? FileManager.default.removeItem(atPath: options.logDirectory!)
    }

    func status(_ body: () async throws -> Void) async -> (RPCError.Code, String)? {
        do {
            try await body()
            return nil
        } catch let error as RPCError {
            return (error.code, error.message)
        } catch {
            return (.unknown, "\(error)")
        }
    }

    func driver(job: JobID, executable: String) -> Ray_Rpc_RegisterClientRequest {
        var request = Ray_Rpc_RegisterClientRequest()
        request.workerType = .driver
        request.workerID = Data(WorkerID.random().bytes)
        request.jobID = Data(job.bytes)
        request.pid = getpid()
        request.executable = executable
        return request
    }

    @Test func badRegistrationsAreRejected() async throws {
        try await withRaylet { _, raylet in
            var noExecutable = driver(job: JobID(number: 1), executable: "")
            #expect(await status { _ = try await raylet.unary(NodeManagerMethods.registerClient, noExecutable) }?.0 == .invalidArgument)
            noExecutable.jobID = Data([1])
            #expect(await status { _ = try await raylet.unary(NodeManagerMethods.registerClient, noExecutable) }?.0 == .invalidArgument)

            var stranger = Ray_Rpc_RegisterClientRequest()
            stranger.workerType = .worker
            stranger.workerID = Data(WorkerID.random().bytes)
            stranger.jobID = Data(JobID(number: 1).bytes)
            #expect(await status { _ = try await raylet.unary(NodeManagerMethods.registerClient, stranger) }?.0 == .notFound,
                    "a worker the raylet did not start")

            let first = driver(job: JobID(number: 2), executable: "/bin/false")
            _ = try await raylet.unary(NodeManagerMethods.registerClient, first)
            #expect(await status { _ = try await raylet.unary(NodeManagerMethods.registerClient, driver(job: JobID(number: 2), executable: "/bin/false")) }?.0 == .alreadyExists)
        }
    }

    @Test func badLeaseRequestsAreRejectedAndImpossibleOnesSaySo() async throws {
        try await withRaylet { _, raylet in
            var lease = Ray_Rpc_RequestWorkerLeaseRequest()
            lease.jobID = Data(JobID(number: 7).bytes)
            lease.requiredResources = ["CPU": 1]
            #expect(await status { _ = try await raylet.unary(NodeManagerMethods.requestWorkerLease, lease) }?.0 == .failedPrecondition,
                    "no driver of that job")

            _ = try await raylet.unary(NodeManagerMethods.registerClient, driver(job: JobID(number: 7), executable: "/bin/false"))
            lease.requiredResources = ["CPU": -1]
            #expect(await status { _ = try await raylet.unary(NodeManagerMethods.requestWorkerLease, lease) }?.0 == .invalidArgument)
            lease.requiredResources = ["CPU": 1]
            lease.labelSelector = ["zone": "in(a"]
            #expect(await status { _ = try await raylet.unary(NodeManagerMethods.requestWorkerLease, lease) }?.0 == .invalidArgument,
                    "a malformed label selector")
            lease.labelSelector = [:]
            lease.schedulingStrategy.nodeAffinitySchedulingStrategy.nodeID = Data(NodeID.random().bytes)
            let unschedulable = try await raylet.unary(NodeManagerMethods.requestWorkerLease, lease)
            #expect(unschedulable.unschedulable, "hard affinity to a node that does not exist")
            #expect(unschedulable.message.contains("soft=False"), "\(unschedulable.message)")
            lease.schedulingStrategy = Ray_Rpc_SchedulingStrategy()

            // More CPUs than any node has: as in Ray it waits (for a node that fits to join), counted
            // in the node's pending demand, until the call's deadline answers it `canceled`.
            lease.requiredResources = ["CPU": 3]
            // (The raylet answers a second before the 8 s deadline; the test looks for the demand for up
            // to 6 s: a loaded machine can take seconds to deliver the request.)
            let waiting = Task { try await raylet.unary(NodeManagerMethods.requestWorkerLease, lease, options: CallOptions(timeout: .seconds(8))) }
            var demand: [Ray_Rpc_ResourceDemand] = []
            let deadline = ContinuousClock.now + .seconds(6)
            while demand.isEmpty && ContinuousClock.now < deadline {
                demand = try await raylet.unary(NodeManagerMethods.getNodeStats, Ray_Rpc_GetNodeStatsRequest()).pendingDemand
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(demand.first?.shape == ["CPU": 3], "\(demand)")
            let infeasible = try await waiting.value
            #expect(infeasible.canceled && infeasible.workerAddress.workerID.isEmpty, "not granted, answered before the deadline")

            var unknown = Ray_Rpc_ReturnWorkerRequest()
            unknown.workerID = Data(WorkerID.random().bytes)
            _ = try await raylet.unary(NodeManagerMethods.returnWorker, unknown)  // a worker that is gone: nothing to do
            unknown.workerID = Data([9])
            #expect(await status { _ = try await raylet.unary(NodeManagerMethods.returnWorker, unknown) }?.0 == .invalidArgument)
        }
    }

    @Test func aJobWhoseWorkersCannotStartFailsItsLeasesInsteadOfRespawningForever() async throws {
        try await withRaylet { node, raylet in
            _ = try await raylet.unary(NodeManagerMethods.registerClient, driver(job: JobID(number: 3), executable: "/bin/false"))
            var lease = Ray_Rpc_RequestWorkerLeaseRequest()
            lease.jobID = Data(JobID(number: 3).bytes)
            lease.requiredResources = ["CPU": 1]
            let failure = await status {
                _ = try await raylet.unary(NodeManagerMethods.requestWorkerLease, lease, options: CallOptions(timeout: .seconds(20)))
            }
            #expect(failure?.0 == .failedPrecondition)
            #expect(failure?.1.contains("exited before registering") == true, "\(failure?.1 ?? "")")
            #expect(failure?.1.contains("exited with status 1") == true, "\(failure?.1 ?? "")")
            // And it stopped starting them.
            try await Task.sleep(for: .milliseconds(300))
            #expect(await node.workerPIDs().isEmpty)
        }
    }

    @Test func badObjectRequestsAreRejectedAndTheStoreKeepsWorking() async throws {
        try await withRaylet { node, raylet in
            let owner = Data(WorkerID.random().bytes)
            var create = Ray_Rpc_CreateObjectRequest()
            create.objectID = Data([1, 2, 3])
            create.ownerWorkerID = owner
            create.dataSize = 10
            #expect(await status { _ = try await raylet.unary(NodeManagerMethods.createObject, create) }?.0 == .invalidArgument)
            create.objectID = Data(ObjectID.random().bytes)
            create.dataSize = -1
            #expect(await status { _ = try await raylet.unary(NodeManagerMethods.createObject, create) }?.0 == .invalidArgument)
            create.dataSize = 64 * 1024 * 1024
            let full = await status { _ = try await raylet.unary(NodeManagerMethods.createObject, create) }
            #expect(full?.0 == .resourceExhausted)
            #expect(full?.1.contains("cannot fit") == true)

            create.dataSize = 1024
            _ = try await raylet.unary(NodeManagerMethods.createObject, create)
            #expect(await status { _ = try await raylet.unary(NodeManagerMethods.createObject, create) }?.0 == .alreadyExists)
            var seal = Ray_Rpc_SealObjectRequest()
            seal.objectID = Data(ObjectID.random().bytes)
            #expect(await status { _ = try await raylet.unary(NodeManagerMethods.sealObject, seal) }?.0 == .notFound)
            seal.objectID = create.objectID
            _ = try await raylet.unary(NodeManagerMethods.sealObject, seal)
            #expect(node.objectStore.objectCount == 1)

            var delete = Ray_Rpc_DeleteObjectsRequest()
            delete.objectIds = [create.objectID, Data(ObjectID.random().bytes)]
            _ = try await raylet.unary(NodeManagerMethods.deleteObjects, delete)
            #expect(node.objectStore.objectCount == 0)
            #expect(node.objectStore.usedBytes == 0)
        }
    }
}
