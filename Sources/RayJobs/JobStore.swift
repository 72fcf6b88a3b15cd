import Foundation
import RayCommon
import RayGCSClient
import RayProtos
import RayRPC

/// Submitted jobs and working-directory packages, kept in the GCS's internal KV (Ray keeps its
/// JobInfo there too, namespace "job", key `_ray_internal_job_info_<id>`), so they outlive the
/// HTTP server and every node can reach them.
public struct JobStore: Sendable {
    public static let namespace = "job"
    static let infoPrefix = "_ray_internal_job_info_"
    static let supervisorPrefix = "_swift_ray_job_supervisor_"
    static let reservationPrefix = "_swift_ray_job_reservation_"

    public let gcs: GCSClient

    public init(gcs: GCSClient) { self.gcs = gcs }

    var kv: GCSClient.InternalKV { gcs.kv(namespace: Self.namespace) }

    /// Records a new job; false (and nothing written) if the ID is taken.
    public func create(_ info: JobInfo) async throws -> Bool {
        try await kv.put(Self.infoPrefix + info.submissionID, try JSONEncoder().encode(info), overwrite: false)
    }

    public func update(_ info: JobInfo) async throws {
        try await kv.put(Self.infoPrefix + info.submissionID, try JSONEncoder().encode(info), overwrite: true)
    }

    public func info(_ id: String) async throws -> JobInfo? {
        guard let data = try await kv.get(Self.infoPrefix + id) else { return nil }
        return try JSONDecoder().decode(JobInfo.self, from: data)
    }

    /// Every submitted job, oldest first.
    public func all() async throws -> [JobInfo] {
        var jobs: [JobInfo] = []
        for key in try await kv.keys(prefix: Self.infoPrefix) {
            guard let data = try await kv.get(key), let info = try? JSONDecoder().decode(JobInfo.self, from: data) else { continue }
            jobs.append(info)
        }
        return jobs.sorted { ($0.startTime, $0.submissionID) < ($1.startTime, $1.submissionID) }
    }

    public func delete(_ id: String) async throws {
        try await kv.delete(Self.infoPrefix + id)
        try await kv.delete(Self.supervisorPrefix + id)
        try await kv.delete(Self.reservationPrefix + id)
    }

    /// The placement group holding the job's entrypoint resources, while it waits or runs.
    public func setReservation(_ id: String, group: PlacementGroupID) async throws {
        try await kv.put(Self.reservationPrefix + id, Data(group.hex.utf8))
    }

    public func reservation(_ id: String) async throws -> PlacementGroupID? {
        try await kv.get(Self.reservationPrefix + id).flatMap { try? PlacementGroupID(hex: String(decoding: $0, as: UTF8.self)) }
    }

    /// The pid of the process supervising the job (on the head), once it started.
    public func setSupervisor(_ id: String, pid: Int32) async throws {
        try await kv.put(Self.supervisorPrefix + id, Data(String(pid).utf8))
    }

    public func supervisor(_ id: String) async throws -> Int32? {
        try await kv.get(Self.supervisorPrefix + id).flatMap { Int32(String(decoding: $0, as: UTF8.self)) }
    }

    // MARK: drivers

    /// The job table's drivers, by submission ID where a driver says it is a submitted job's.
    public func drivers() async throws -> [DriverJob] {
        try await gcs.jobs().map { job in
            DriverJob(
                jobID: Hex.string(job.jobID),
                isDead: job.isDead, driverIP: job.driverAddress.ipAddress, driverPID: job.driverPid,
                entrypoint: job.entrypoint, startTime: Int64(job.startTimeMs), endTime: Int64(job.endTimeMs),
                submissionID: job.workerLaunch.environment["RAY_JOB_SUBMISSION_ID"])
        }
    }

    // MARK: packages

    var packages: GCSClient.InternalKV { gcs.kv(namespace: RuntimeEnvPackage.kvNamespace) }

    public func packageExists(_ uri: String) async throws -> Bool { try await packages.get(uri) != nil }

    public func putPackage(_ uri: String, _ bytes: Data) async throws { try await packages.put(uri, bytes) }

    public func package(_ uri: String) async throws -> Data? { try await packages.get(uri) }
}
