import Foundation
import Hummingbird
import HummingbirdWebSocket
import RayCommon
import RayGCSClient
import RayJobs
import RayProtos

/// Ray's state API (`GET /api/v0/{nodes,actors,jobs,placement_groups,workers,tasks,objects}`): the GCS's tables as
/// Ray's rows (`ray/util/state/common.py`), in Ray's envelope, so `ray list …` prints them.
struct StateAPI: Sendable {
    let gcs: GCSClient
    let jobs: JobsAPI
    var objects: ObjectsState { ObjectsState(gcs: gcs) }

    func addRoutes(to router: Router<BasicWebSocketRequestContext>) {
        let sources: [(StateResource, @Sendable () async throws -> [[String: JSON]])] = [
            (.nodes, nodeRows), (.actors, actorRows), (.placementGroups, placementGroupRows), (.workers, workerRows),
            (.jobs, jobRows), (.tasks, taskRows),
        ]
        for (resource, rows) in sources {
            router.get("/api/v0/\(resource.name)") { request, _ in
                let parameters = request.uri.queryParameters.map { (String($0.key), String($0.value)) }
                let query: StateQuery
                do { query = try StateQuery.parse(parameters, for: resource) } catch {
                    return HTTP.json(StateQuery.failure("\(error)"), status: .badRequest)
                }
                do {
                    return HTTP.json(StateQuery.envelope(query.reply(try await rows(), for: resource)))
                } catch {
                    return HTTP.json(StateQuery.failure("Failed to read the \(resource.name) from the GCS: \(error)"),
                                     status: .internalServerError)
                }
            }
        }
        router.get("/api/v0/tasks/summarize") { _, _ in
            do { return HTTP.json(StateQuery.envelope(Self.summaryEnvelope(Self.taskSummary(try await taskRows())))) } catch {
                return HTTP.json(StateQuery.failure("Failed to read the tasks from the GCS: \(error)"), status: .internalServerError)
            }
        }
        router.get("/api/v0/actors/summarize") { _, _ in
            do { return HTTP.json(StateQuery.envelope(Self.summaryEnvelope(Self.actorSummary(try await actorRows())))) } catch {
                return HTTP.json(StateQuery.failure("Failed to read the actors from the GCS: \(error)"), status: .internalServerError)
            }
        }
        router.get("/api/v0/objects") { request, _ in
            let parameters = request.uri.queryParameters.map { (String($0.key), String($0.value)) }
            let query: StateQuery
            let timeout: Duration
            do {
                query = try StateQuery.parse(parameters, for: .objects)
                timeout = try StateQuery.timeout(parameters)
            } catch {
                return HTTP.json(StateQuery.failure("\(error)"), status: .badRequest)
            }
            do {
                // Filters apply after gathering, so each process is asked for all it has then.
                let gathered = try await objects.gather(limit: query.filters.isEmpty ? query.limit : 0, timeout: timeout)
                return HTTP.json(StateQuery.envelope(query.reply(gathered.rows, for: .objects, total: gathered.total,
                                                                 partialFailure: ObjectsState.warning(gathered.failures))))
            } catch {
                return HTTP.json(StateQuery.failure("Failed to list the drivers and workers from the GCS: \(error)"), status: .internalServerError)
            }
        }
        router.get("/api/v0/objects/summarize") { request, _ in
            let parameters = request.uri.queryParameters.map { (String($0.key), String($0.value)) }
            let timeout: Duration
            do { timeout = try StateQuery.timeout(parameters) } catch { return HTTP.json(StateQuery.failure("\(error)"), status: .badRequest) }
            do {
                let gathered = try await objects.gather(limit: 0, timeout: timeout)
                return HTTP.json(StateQuery.envelope(Self.summaryEnvelope(ObjectsState.summary(gathered.rows),
                                                                          partialFailure: ObjectsState.warning(gathered.failures))))
            } catch {
                return HTTP.json(StateQuery.failure("Failed to list the drivers and workers from the GCS: \(error)"), status: .internalServerError)
            }
        }
    }

    static func hex(_ data: Data) -> String { Hex.string(data) }
    static func hexOrNull(_ data: Data) -> JSON { data.isEmpty ? .null : .string(hex(data)) }
    static func numbers(_ map: [String: Double]) -> JSON {
        .object(map.sorted { $0.key < $1.key }.map { JSON.Member($0.key, .double($0.value)) })
    }

    @Sendable func nodeRows() async throws -> [[String: JSON]] {
        try await gcs.nodes().map { node in
            let alive = node.state == .alive
            let message: JSON = alive ? .null
                : .string(node.deathReason.isEmpty ? "Unexpected termination" : "Unexpected termination: \(node.deathReason)")
            return [
                "node_id": .string(Self.hex(node.nodeID)),
                "node_ip": .string(node.nodeManagerAddress),
                "is_head_node": .bool(node.isHeadNode),
                "state": .string(alive ? "ALIVE" : "DEAD"),
                "state_message": message,
                "node_name": .string(node.nodeName.isEmpty ? node.nodeManagerAddress : node.nodeName),
                "resources_total": Self.numbers(node.resourcesTotal),
                // ray.io/object-store names our shared-memory file: an implementation detail.
                "labels": .string(node.labels.filter { $0.key != "ray.io/object-store" }),
                "start_time_ms": .int(Int64(node.startTimeMs)),
                "end_time_ms": .int(Int64(node.endTimeMs)),
            ]
        }
    }

    @Sendable func actorRows() async throws -> [[String: JSON]] {
        try await gcs.actors().map { actor in
            [
                "actor_id": .string(Self.hex(actor.actorID)),
                "class_name": .string(actor.className),
                "state": .string(actor.state.rayName),
                "job_id": .string(Self.hex(actor.jobID)),
                "name": .string(actor.name),
                "node_id": Self.hexOrNull(actor.address.nodeID),
                "pid": actor.pid > 0 ? .int(Int64(actor.pid)) : .null,
                "ray_namespace": .string(actor.rayNamespace),
                "required_resources": Self.numbers(actor.requiredResources),
                "death_cause": actor.deathCause.isEmpty ? .null : .string(actor.deathCause),
                "is_detached": .bool(actor.isDetached),
                "repr_name": .string(""),
                "num_restarts": .int(0),
                "num_restarts_due_to_lineage_reconstruction": .int(0),
                "num_restarts_due_to_node_preemption": .int(0),
            ]
        }
    }

    @Sendable func placementGroupRows() async throws -> [[String: JSON]] {
        try await gcs.placementGroups().map { group in
            let bundles: [JSON] = group.bundles.map { bundle in
                .object([
                    "bundle_id": .string("\(Self.hex(group.placementGroupID))_\(bundle.bundleID.bundleIndex)"),
                    "node_id": Self.hexOrNull(bundle.nodeID),
                    "unit_resources": Self.numbers(bundle.unitResources),
                    "label_selector": .object(bundle.labelSelector.sorted { $0.key < $1.key }.map { JSON.Member($0.key, .string($0.value)) }),
                ])
            }
            return [
                "placement_group_id": .string(Self.hex(group.placementGroupID)),
                "name": .string(group.name),
                "creator_job_id": .string(Self.hex(group.creatorJobID)),
                "state": .string(group.state.rayName),
                "bundles": .array(bundles),
                "is_detached": .bool(group.isDetached),
                "stats": .null,
            ]
        }
    }

    @Sendable func workerRows() async throws -> [[String: JSON]] {
        try await gcs.workers().map { worker in
            let detail = worker.exitDetail
            let exitType: JSON = worker.isAlive ? .null
                : .string(detail.contains("idle") || detail.contains("status 0") ? "INTENDED_SYSTEM_EXIT" : "SYSTEM_ERROR")
            return [
                "worker_id": .string(Self.hex(worker.workerAddress.workerID)),
                "is_alive": .bool(worker.isAlive),
                "worker_type": .string("WORKER"),
                "exit_type": exitType,
                "node_id": .string(Self.hex(worker.workerAddress.nodeID)),
                "ip": .string(worker.workerAddress.ipAddress),
                "pid": .int(Int64(worker.pid)),
                "exit_detail": detail.isEmpty ? .null : .string(detail),
                "start_time_ms": .int(Int64(worker.startTimeMs)),
                "end_time_ms": .int(Int64(worker.endTimeMs)),
            ]
        }
    }

    @Sendable func taskRows() async throws -> [[String: JSON]] {
        try await gcs.taskEvents().tasks.map { record in
            let task = record.task
            func ms(_ ns: Int64) -> JSON { ns > 0 ? .int(ns / 1_000_000) : .null }
            return [
                "task_id": .string(Self.hex(task.taskID)),
                "attempt_number": .int(Int64(task.attemptNumber)),
                "name": .string(task.name),
                "state": .string(task.state),
                "job_id": .string(Self.hex(task.jobID)),
                "actor_id": Self.hexOrNull(task.actorID),
                "type": .string(task.type.isEmpty ? "NORMAL_TASK" : task.type),
                "func_or_class_name": .string(task.funcOrClassName),
                // A task the driver submitted has the driver's task as its parent, as in Ray.
                "parent_task_id": .string(task.parentTaskID.isEmpty ? Self.driverTaskID(task.jobID) : Self.hex(task.parentTaskID)),
                "node_id": Self.hexOrNull(task.nodeID),
                "worker_id": Self.hexOrNull(task.workerID),
                "worker_pid": task.workerPid > 0 ? .int(Int64(task.workerPid)) : .null,
                "error_type": task.errorType.isEmpty ? .null : .string(task.errorType),
                "language": .string("SWIFT"),
                "required_resources": Self.numbers(task.requiredResources),
                "creation_time_ms": ms(record.creationTimeNs),
                "start_time_ms": ms(record.startTimeNs),
                "end_time_ms": ms(record.endTimeNs),
                "error_message": task.errorMessage.isEmpty ? .null : .string(task.errorMessage),
                "is_debugger_paused": .bool(false),
            ]
        }
    }

    /// Ray's ID of a job's driver task: all ones but the job ID at the end.
    static func driverTaskID(_ job: Data) -> String {
        let hex = Self.hex(job)
        return String(repeating: "f", count: max(0, 48 - hex.count)) + hex
    }

    /// Ray's summary rows: `data.result.result.node_id_to_summary.cluster`.
    static func summaryEnvelope(_ cluster: JSON, partialFailure: String = "") -> JSON {
        .object([
            "total": .int(1), "num_after_truncation": .int(1), "num_filtered": .int(1),
            "result": .object(["node_id_to_summary": .object(["cluster": cluster])]),
            "partial_failure_warning": .string(partialFailure), "warnings": .null,
        ])
    }

    static func counts(_ states: [String]) -> JSON {
        var counts: [String: Int64] = [:]
        for state in states { counts[state, default: 0] += 1 }
        return .object(counts.sorted { $0.key < $1.key }.map { JSON.Member($0.key, .int($0.value)) })
    }

    /// Ray's TaskSummaries, by function name.
    static func taskSummary(_ rows: [[String: JSON]]) -> JSON {
        let groups = Dictionary(grouping: rows) { $0["func_or_class_name"]?.stringValue ?? "" }
        let summary = groups.sorted { $0.key < $1.key }.map { name, rows in
            JSON.Member(name, .object([
                "func_or_class_name": .string(name),
                "type": rows.first?["type"] ?? .string("NORMAL_TASK"),
                "state_counts": counts(rows.map { $0["state"]?.stringValue ?? "" }),
            ]))
        }
        func total(_ type: String) -> JSON { .int(Int64(rows.filter { $0["type"]?.stringValue == type }.count)) }
        return .object([
            "summary": .object(summary), "total_tasks": total("NORMAL_TASK"), "total_actor_tasks": total("ACTOR_TASK"),
            "total_actor_scheduled": total("ACTOR_CREATION_TASK"), "summary_by": .string("func_name"),
        ])
    }

    /// Ray's ActorSummaries, by class.
    static func actorSummary(_ rows: [[String: JSON]]) -> JSON {
        let groups = Dictionary(grouping: rows) { $0["class_name"]?.stringValue ?? "" }
        let summary = groups.sorted { $0.key < $1.key }.map { name, rows in
            JSON.Member(name, .object(["class_name": .string(name), "state_counts": counts(rows.map { $0["state"]?.stringValue ?? "" })]))
        }
        return .object(["summary": .object(summary), "total_actors": .int(Int64(rows.count)), "summary_by": .string("class")])
    }

    @Sendable func jobRows() async throws -> [[String: JSON]] {
        try await jobs.allDetails().map { details in
            guard case .object(let members) = details else { return [:] }
            return Dictionary(members.map { ($0.key, $0.value) }) { _, last in last }
        }
    }
}
