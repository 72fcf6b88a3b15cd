import Foundation
import RayCommon

/// A submitted job's state, Ray's values (`ray.job_submission.JobStatus`).
public enum JobStatus: String, Codable, Sendable, CaseIterable {
    case PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED

    public var isTerminal: Bool { self == .STOPPED || self == .SUCCEEDED || self == .FAILED }

    /// Ray's message for a job that reached this state without a more specific one.
    public var defaultMessage: String {
        switch self {
        case .PENDING: "Job has not started yet. It may be waiting for resources (CPUs, GPUs, memory, custom resources) to become available."
        case .RUNNING: "Job is currently running."
        case .STOPPED: "Job was intentionally stopped."
        case .SUCCEEDED: "Job finished successfully."
        case .FAILED: "Job failed."
        }
    }
}

/// Why a job failed, Ray's values (`JobErrorType`).
public enum JobErrorType: String, Codable, Sendable {
    case RUNTIME_ENV_SETUP_FAILURE
    case JOB_SUPERVISOR_ACTOR_START_TIMEOUT
    case JOB_SUPERVISOR_ACTOR_START_FAILURE
    case JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE
    case JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE
    case JOB_SUPERVISOR_ACTOR_DIED
    case JOB_ENTRYPOINT_COMMAND_START_ERROR
    case JOB_ENTRYPOINT_COMMAND_ERROR
}

/// What the GCS keeps about a submitted job (in the internal KV, so it outlives the HTTP server).
/// The dashboard writes it once at submission; from then on the job's supervisor is its only writer.
public struct JobInfo: Codable, Sendable, Equatable {
    public var submissionID: String
    public var entrypoint: String
    public var status: JobStatus
    public var message: String
    public var errorType: JobErrorType?
    /// Milliseconds since the epoch.
    public var startTime: Int64
    public var endTime: Int64?
    public var metadata: [String: String]
    /// The runtime_env as submitted, JSON text (key order kept).
    public var runtimeEnvJSON: String
    public var entrypointNumCPUs: Double?
    public var entrypointNumGPUs: Double?
    public var entrypointMemory: Int64?
    public var entrypointResources: [String: Double]?
    public var driverExitCode: Int32?
    public var driverPID: Int32?
    public var driverNodeID: String?
    public var driverNodeIP: String?

    public init(submissionID: String, entrypoint: String, startTime: Int64) {
        self.submissionID = submissionID
        self.entrypoint = entrypoint
        self.status = .PENDING
        self.message = JobStatus.PENDING.defaultMessage
        self.startTime = startTime
        self.metadata = [:]
        self.runtimeEnvJSON = "{}"
    }

    public var runtimeEnv: JSON { (try? JSON.parse(runtimeEnvJSON)) ?? .object([]) }

    public static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

/// A job the GCS's job table knows: a driver that connected (a submitted job's entrypoint, or a
/// program started by hand).
public struct DriverJob: Sendable {
    public var jobID: String
    public var isDead: Bool
    public var driverIP: String
    public var driverPID: Int32
    public var entrypoint: String
    public var startTime: Int64
    public var endTime: Int64
    public var submissionID: String?

    public init(jobID: String, isDead: Bool, driverIP: String, driverPID: Int32, entrypoint: String,
                startTime: Int64, endTime: Int64, submissionID: String?) {
        self.jobID = jobID
        self.isDead = isDead
        self.driverIP = driverIP
        self.driverPID = driverPID
        self.entrypoint = entrypoint
        self.startTime = startTime
        self.endTime = endTime
        self.submissionID = submissionID
    }
}

/// Ray's `JobDetails` JSON (`ray/dashboard/modules/job/pydantic_models.py`), keys in its order.
public enum JobDetails {
    public static func json(_ info: JobInfo, driver: DriverJob?, agentAddress: String?) -> JSON {
        let driverInfo: JSON = driver.map { d in
            .object(["id": .string(d.jobID), "node_ip_address": .string(d.driverIP), "pid": .string(String(d.driverPID))])
        } ?? .null
        return .object([
            "type": .string("SUBMISSION"),
            "job_id": driver.map { .string($0.jobID) } ?? .null,
            "submission_id": .string(info.submissionID),
            "driver_info": driverInfo,
            "status": .string(info.status.rawValue),
            "entrypoint": .string(info.entrypoint),
            "message": .string(info.message),
            "error_type": info.errorType.map { .string($0.rawValue) } ?? .null,
            "start_time": .int(info.startTime),
            "end_time": info.endTime.map { .int($0) } ?? .null,
            "metadata": .string(info.metadata),
            "runtime_env": info.runtimeEnv,
            "driver_agent_http_address": agentAddress.map { .string($0) } ?? .null,
            "driver_node_id": info.driverNodeID.map { .string($0) } ?? .null,
            "driver_exit_code": info.driverExitCode.map { .int(Int64($0)) } ?? .null,
        ])
    }

    /// A program that connected by itself (no submission): Ray lists it with type DRIVER.
    public static func json(driver d: DriverJob) -> JSON {
        .object([
            "type": .string("DRIVER"),
            "job_id": .string(d.jobID),
            "submission_id": .null,
            "driver_info": .object(["id": .string(d.jobID), "node_ip_address": .string(d.driverIP), "pid": .string(String(d.driverPID))]),
            "status": .string(d.isDead ? JobStatus.SUCCEEDED.rawValue : JobStatus.RUNNING.rawValue),
            "entrypoint": .string(d.entrypoint),
            "message": .null,
            "error_type": .null,
            "start_time": .int(d.startTime),
            "end_time": d.isDead ? .int(d.endTime) : .null,
            "metadata": .object([]),
            "runtime_env": .object([]),
            "driver_agent_http_address": .null,
            "driver_node_id": .null,
            "driver_exit_code": .null,
        ])
    }
}

/// Submission IDs as Ray makes them: `raysubmit_` and 16 characters that cannot be misread.
public enum SubmissionID {
    /// [A-Za-z0-9] without I, l, o, O and 0 (`ray/dashboard/modules/job/utils.py`).
    public static let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz123456789")

    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        return "raysubmit_" + String((0..<16).map { _ in alphabet.randomElement(using: &generator)! })
    }

    /// What a submission ID may be: it names a log file and KV keys, so no '/', no control characters.
    public static func validate(_ id: String) -> String? {
        if id.isEmpty { return "submission_id must not be empty" }
        if id.utf8.count > 255 { return "submission_id is longer than 255 bytes" }
        if id == "." || id == ".." || id.unicodeScalars.contains(where: { $0 == "/" || $0.value < 0x20 || $0.value == 0x7F }) {
            return "submission_id may not contain '/' or control characters, got '\(id)'"
        }
        return nil
    }
}
