import Foundation
import RayCommon
import RayGCSClient
import RayProtos
import RayRPC
import RayServices

/// Ray's `GET /api/v0/objects` and `/api/v0/objects/summarize`: every live driver and worker is
/// asked for the objects it references (GetCoreWorkerStats), one row per process and object, as
/// Ray's state head gathers them from each core worker. A process that does not answer in time is
/// left out and named in `partial_failure_warning`.
struct ObjectsState: Sendable {
    let gcs: GCSClient

    struct Process: Sendable {
        let address: Ray_Rpc_Address
        let isDriver: Bool
    }

    struct Gathered {
        var rows: [[String: JSON]] = []
        var failures: [String] = []
        /// References past each process's limit, counted but not listed.
        var total = 0
    }

    /// Every live driver and worker with an address to ask.
    func processes() async throws -> [Process] {
        var found: [Process] = []
        for job in try await gcs.jobs() where !job.isDead && job.driverAddress.port > 0 {
            found.append(Process(address: job.driverAddress, isDriver: true))
        }
        for worker in try await gcs.workers() where worker.isAlive && worker.workerAddress.port > 0 {
            found.append(Process(address: worker.workerAddress, isDriver: false))
        }
        return found
    }

    /// Rows from every process (each asked for at most `limit`), within `timeout`.
    func gather(limit: Int, timeout: Duration) async throws -> Gathered {
        let processes = try await processes()
        return await withTaskGroup(of: (Process, Result<Ray_Rpc_GetCoreWorkerStatsReply, RPCError>).self) { group in
            for process in processes {
                group.addTask {
                    do {
                        let channel = try RPCChannel(host: process.address.ipAddress, port: Int(process.address.port))
                        var request = Ray_Rpc_GetCoreWorkerStatsRequest()
                        request.limit = Int64(limit)
                        let reply = try await channel.unary(CoreWorkerMethods.getCoreWorkerStats, request, options: CallOptions(timeout: timeout))
                        return (process, .success(reply))
                    } catch { return (process, .failure(error as? RPCError ?? RPCError(code: .unknown, message: "\(error)"))) }
                }
            }
            var gathered = Gathered()
            for await (process, result) in group {
                switch result {
                case .success(let reply):
                    gathered.total += Int(reply.total)
                    for ref in reply.objectRefs { gathered.rows.append(Self.row(ref, reply, process)) }
                case .failure(let error):
                    // A worker that ended between the table read and the call has nothing to list.
                    if error.code == .unavailable { continue }
                    gathered.failures.append("\(process.isDriver ? "driver" : "worker") \(Hex.string(process.address.workerID)) at \(process.address.ipAddress):\(process.address.port): \(error.message)")
                }
            }
            return gathered
        }
    }

    /// Ray's partial-failure text naming the processes that did not answer ("" when all did).
    static func warning(_ failures: [String]) -> String {
        failures.isEmpty ? "" : "Failed to query the objects of \(failures.count) process(es): " + failures.sorted().joined(separator: "; ")
    }

    /// Ray's reference type, from the counts (Ray's `memory_utils` order, without plasma pinning).
    static func referenceType(_ ref: Ray_Rpc_ObjectRefInfo) -> String {
        if ref.submittedTaskRefCount > 0 { return "USED_BY_PENDING_TASK" }
        if ref.localRefCount > 0 { return "LOCAL_REFERENCE" }
        return "UNKNOWN_STATUS"
    }

    static func row(_ ref: Ray_Rpc_ObjectRefInfo, _ reply: Ray_Rpc_GetCoreWorkerStatsReply, _ process: Process) -> [String: JSON] {
        [
            "object_id": .string(Hex.string(ref.objectID)),
            "object_size": .int(ref.objectSize),
            "task_status": .string(ref.taskStatus),
            "attempt_number": .int(Int64(ref.attemptNumber)),
            "reference_type": .string(referenceType(ref)),
            // Ray records creation sites only with RAY_record_ref_creation_sites=1; we never do.
            "call_site": .string("disabled"),
            "type": .string(reply.isDriver ? "DRIVER" : "WORKER"),
            "pid": .int(Int64(reply.pid)),
            "ip": .string(reply.ipAddress.isEmpty ? process.address.ipAddress : reply.ipAddress),
            // Not a Ray column: which process, for the summary's worker and node counts.
            "_worker_id": .string(Hex.string(process.address.workerID)),
            "_node_id": .string(Hex.string(process.address.nodeID)),
        ]
    }

    /// Ray's ObjectSummaries, by call site (one group, "disabled", as Ray's without call sites).
    static func summary(_ rows: [[String: JSON]]) -> JSON {
        let groups = Dictionary(grouping: rows) { $0["call_site"]?.stringValue ?? "" }
        func megabytes(_ rows: [[String: JSON]]) -> Double {
            Double(rows.reduce(Int64(0)) { total, row in
                if case .int(let size)? = row["object_size"], size > 0 { return total + size }
                return total
            }) / (1024 * 1024)
        }
        func distinct(_ key: String, _ rows: [[String: JSON]]) -> Int64 { Int64(Set(rows.map { $0[key]?.stringValue ?? "" }).count) }
        let summary = groups.sorted { $0.key < $1.key }.map { site, rows in
            JSON.Member(site, .object([
                "total_objects": .int(Int64(rows.count)),
                "total_size_mb": .double(megabytes(rows)),
                "total_num_workers": .int(distinct("_worker_id", rows)),
                "total_num_nodes": .int(distinct("_node_id", rows)),
                "task_state_counts": StateAPI.counts(rows.map { $0["task_status"]?.stringValue ?? "" }),
                "task_attempt_number_counts": StateAPI.counts(rows.map { row in
                    if case .int(let attempt)? = row["attempt_number"] { return String(attempt) }
                    return "0"
                }),
                "ref_type_counts": StateAPI.counts(rows.map { $0["reference_type"]?.stringValue ?? "" }),
            ]))
        }
        return .object([
            "summary": .object(summary), "total_objects": .int(Int64(rows.count)), "total_size_mb": .double(megabytes(rows)),
            "callsite_enabled": .bool(false), "summary_by": .string("callsite"),
        ])
    }
}
