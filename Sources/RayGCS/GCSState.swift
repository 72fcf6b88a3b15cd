#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayConcurrency
import RayProtos
import RayRPC
import RayServices

typealias PubMessage = Ray_Rpc_PubMessage
typealias ChannelType = Ray_Rpc_ChannelType

/// The GCS's tables and its publisher, in one actor so every change is ordered and published once.
/// Kept in memory; a durable store (for GCS restarts) plugs in with the fault-tolerance work.
/// Runs on the GCS's thread.
actor GCSState {
    nonisolated var unownedExecutor: UnownedSerialExecutor { ThreadExecutor.gcs.asUnownedSerialExecutor() }

    private var nodes: [NodeID: Ray_Rpc_GcsNodeInfo] = [:]
    private var jobs: [JobID: Ray_Rpc_JobTableData] = [:]
    private var lastJobNumber: Int32 = 0
    private var kv: [Data: [Data: Data]] = [:]
    /// Workers by ID, and the order they came in (the table keeps the newest `workerLimit`).
    private var workers: [WorkerID: Ray_Rpc_WorkerTableData] = [:]
    private var workerOrder: [WorkerID] = []
    private let workerLimit = 10_000
    /// The resource view: each node's last report.
    private var resources: [NodeID: Ray_Rpc_ResourcesData] = [:]
    /// Since when (the GCS's clock) each idle node has been idle, for the autoscaler.
    private var idleSince: [NodeID: ContinuousClock.Instant] = [:]

    // Pub/sub: a bounded log of messages and the long polls waiting for the next one.
    private var log: [PubMessage] = []
    private var sequence: Int64 = 0
    private let logLimit = 10_000
    private struct Waiter {
        var channels: Set<ChannelType>
        var after: Int64
        var continuation: CheckedContinuation<[PubMessage], Never>
    }
    private var waiters: [Int: Waiter] = [:]
    private var nextWaiter = 0

    static func nowMilliseconds() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    // MARK: nodes

    func registerNode(_ info: Ray_Rpc_GcsNodeInfo) throws(RPCError) {
        let id = try NodeID(info.nodeID, field: "node_id")
        guard !info.nodeManagerAddress.isEmpty, info.nodeManagerPort > 0 else {
            throw RPCError(code: .invalidArgument, message: "a node needs node_manager_address and node_manager_port")
        }
        if let existing = nodes[id], existing.state == .alive {
            throw RPCError(code: .alreadyExists, message: "node \(id) is already registered")
        }
        var node = info
        node.state = .alive
        node.startTimeMs = Self.nowMilliseconds()
        nodes[id] = node
        publish(.gcsNodeInfoChannel, key: info.nodeID) { $0.nodeInfoMessage = node }
    }

    func unregisterNode(_ rawID: Data, reason: String) throws(RPCError) {
        let id = try NodeID(rawID, field: "node_id")
        guard var node = nodes[id] else { throw RPCError(code: .notFound, message: "no node \(id)") }
        guard node.state == .alive else { return }
        node.state = .dead
        node.deathReason = reason
        node.endTimeMs = Self.nowMilliseconds()
        nodes[id] = node
        publish(.gcsNodeInfoChannel, key: rawID) { $0.nodeInfoMessage = node }
    }

    func allNodes() -> [Ray_Rpc_GcsNodeInfo] { nodes.values.sorted { $0.startTimeMs < $1.startTimeMs } }

    func alive(_ rawIDs: [Data]) -> [Bool] {
        rawIDs.map { raw in
            guard let id = try? NodeID(bytes: raw) else { return false }
            return nodes[id]?.state == .alive
        }
    }

    // MARK: jobs

    func nextJobNumber() -> Int32 {
        lastJobNumber += 1
        return lastJobNumber
    }

    func addJob(_ data: Ray_Rpc_JobTableData) throws(RPCError) {
        let id = try JobID(data.jobID, field: "job_id")
        if jobs[id] != nil { throw RPCError(code: .alreadyExists, message: "job \(id) exists") }
        var job = data
        job.isDead = false
        job.startTimeMs = Self.nowMilliseconds()
        jobs[id] = job
        lastJobNumber = max(lastJobNumber, Int32(bitPattern: id.number))
        publish(.gcsJobChannel, key: data.jobID) { $0.jobMessage = job }
    }

    func markJobFinished(_ rawID: Data) throws(RPCError) {
        let id = try JobID(rawID, field: "job_id")
        guard var job = jobs[id] else { throw RPCError(code: .notFound, message: "no job \(id)") }
        guard !job.isDead else { return }
        job.isDead = true
        job.endTimeMs = Self.nowMilliseconds()
        jobs[id] = job
        publish(.gcsJobChannel, key: rawID) { $0.jobMessage = job }
    }

    func allJobs() -> [Ray_Rpc_JobTableData] { jobs.values.sorted { $0.startTimeMs < $1.startTimeMs } }

    // MARK: workers

    func addWorker(_ data: Ray_Rpc_WorkerTableData) throws(RPCError) {
        let id = try WorkerID(data.workerAddress.workerID, field: "worker_address.worker_id")
        if workers[id] == nil {
            workerOrder.append(id)
            if workerOrder.count > workerLimit {
                // Forget the oldest dead workers first.
                if let index = workerOrder.firstIndex(where: { workers[$0]?.isAlive == false }) {
                    workers[workerOrder.remove(at: index)] = nil
                }
            }
        }
        var worker = data
        worker.isAlive = true
        if worker.startTimeMs == 0 { worker.startTimeMs = Self.nowMilliseconds() }
        workers[id] = worker
    }

    func reportWorkerFailure(_ data: Ray_Rpc_WorkerTableData) throws(RPCError) {
        let id = try WorkerID(data.workerAddress.workerID, field: "worker_address.worker_id")
        var worker = workers[id] ?? data
        if workers[id] == nil { workerOrder.append(id) }
        worker.isAlive = false
        worker.exitDetail = data.exitDetail
        worker.endTimeMs = data.endTimeMs == 0 ? Self.nowMilliseconds() : data.endTimeMs
        workers[id] = worker
    }

    func allWorkers(limit: Int) -> (workers: [Ray_Rpc_WorkerTableData], total: Int) {
        let newest = workerOrder.reversed().compactMap { workers[$0] }
        return (limit > 0 ? Array(newest.prefix(limit)) : newest, newest.count)
    }

    // MARK: resource view

    func reportResources(_ data: Ray_Rpc_ResourcesData) throws(RPCError) {
        let id = try NodeID(data.nodeID, field: "node_id")
        guard nodes[id]?.state == .alive else {
            throw RPCError(code: .failedPrecondition, message: "node \(id) is not a live registered node")
        }
        if data.isIdle {
            if idleSince[id] == nil { idleSince[id] = .now }
        } else {
            idleSince[id] = nil
        }
        guard resources[id] != data else { return }
        resources[id] = data
        // Every raylet schedules with the view: publish the change (the sequence id versions it).
        publish(.gcsResourceViewChannel, key: data.nodeID) { $0.resourcesMessage = data }
    }

    /// The last report of every live node.
    func allResources() -> [Ray_Rpc_ResourcesData] {
        let now = ContinuousClock.now
        return resources.filter { nodes[$0.key]?.state == .alive }.map { id, data in
            var data = data
            if let since = idleSince[id] { data.idleDurationMs = max(1, Int64((now - since) / .milliseconds(1))) }
            return data
        }.sorted { $0.nodeID.lexicographicallyPrecedes($1.nodeID) }
    }

    // MARK: internal KV

    func kvGet(_ namespace: Data, _ key: Data) -> Data? { kv[namespace]?[key] }

    /// Ray's semantics: returns 1 when the key was new; an existing key keeps its value unless `overwrite`.
    func kvPut(_ namespace: Data, _ key: Data, _ value: Data, overwrite: Bool) -> Int32 {
        let existed = kv[namespace]?[key] != nil
        if !existed || overwrite { kv[namespace, default: [:]][key] = value }
        return existed ? 0 : 1
    }

    func kvDelete(_ namespace: Data, _ key: Data, byPrefix: Bool) -> Int32 {
        guard var table = kv[namespace] else { return 0 }
        var deleted: Int32 = 0
        if byPrefix {
            for k in table.keys where k.starts(with: key) {
                table[k] = nil
                deleted += 1
            }
        } else if table.removeValue(forKey: key) != nil {
            deleted = 1
        }
        kv[namespace] = table.isEmpty ? nil : table
        return deleted
    }

    func kvKeys(_ namespace: Data, prefix: Data) -> [Data] {
        (kv[namespace] ?? [:]).keys.filter { $0.starts(with: prefix) }.sorted { $0.lexicographicallyPrecedes($1) }
    }

    // MARK: actors (the table lives in ActorManager; changes are published here, in order)

    func publishActor(_ data: Ray_Rpc_ActorTableData) {
        publish(.gcsActorChannel, key: data.actorID) { $0.actorMessage = data }
    }

    func publishPlacementGroup(_ data: Ray_Rpc_PlacementGroupTableData) { publishPlacementGroups([data]) }

    /// Several changes at once: a subscriber waiting gets them in one answer.
    func publishPlacementGroups(_ list: [Ray_Rpc_PlacementGroupTableData]) {
        guard let last = list.last else { return }
        for data in list.dropLast() {
            append(.gcsPlacementGroupChannel, key: data.placementGroupID) { $0.placementGroupMessage = data }
        }
        publish(.gcsPlacementGroupChannel, key: last.placementGroupID) { $0.placementGroupMessage = last }
    }

    // MARK: pub/sub

    /// Logs a message without waking subscribers (a ``publish(_:key:_:)`` after it does).
    private func append(_ channel: ChannelType, key: Data, _ fill: (inout PubMessage) -> Void) {
        sequence += 1
        var message = PubMessage()
        message.channelType = channel
        message.keyID = key
        message.sequenceID = sequence
        fill(&message)
        log.append(message)
        if log.count > logLimit { log.removeFirst(log.count - logLimit) }
    }

    private func publish(_ channel: ChannelType, key: Data, _ fill: (inout PubMessage) -> Void) {
        append(channel, key: key, fill)
        for (id, waiter) in waiters where waiter.channels.isEmpty || waiter.channels.contains(channel) {
            waiters[id] = nil
            waiter.continuation.resume(returning: messages(after: waiter.after, on: waiter.channels))
        }
    }

    private func messages(after: Int64, on channels: Set<ChannelType>) -> [PubMessage] {
        // The log is ordered by sequence id: find the first newer message, then filter by channel.
        var low = 0
        var high = log.count
        while low < high {
            let mid = (low + high) / 2
            if log[mid].sequenceID <= after { low = mid + 1 } else { high = mid }
        }
        return log[low...].filter { channels.isEmpty || channels.contains($0.channelType) }
    }

    /// The newest sequence id published.
    var latestSequence: Int64 { sequence }

    /// The messages after `after` on `channels` (all if empty); waits up to `timeout` for one. A
    /// negative `after` answers at once with nothing.
    func poll(after: Int64, channels: Set<ChannelType>, timeout: Duration) async -> [PubMessage] {
        if after < 0 { return [] }
        let ready = messages(after: after, on: channels)
        if !ready.isEmpty || timeout <= .zero { return ready }
        let id = nextWaiter
        nextWaiter += 1
        // The timer and the cancellation each come to this actor in a task of the GCS's thread.
        let expiry = ThreadExecutor.gcs.schedule(after: timeout) { [weak self] in
            Task(executorPreference: ThreadExecutor.gcs) { await self?.expire(id) }
        }
        defer { ThreadExecutor.gcs.cancel(expiry) }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                waiters[id] = Waiter(channels: channels, after: after, continuation: continuation)
            }
        } onCancel: {
            Task(executorPreference: ThreadExecutor.gcs) { await self.expire(id) }
        }
    }

    private func expire(_ id: Int) {
        waiters.removeValue(forKey: id)?.continuation.resume(returning: [])
    }

}
