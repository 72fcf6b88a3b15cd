import Foundation
import RayCommon

/// The job supervisor processes this server started (`ray job-supervisor`), kept until they exit
/// so they are reaped.
final class Supervisors: @unchecked Sendable {
    private let lock = NSLock()
    private var running: [Int32: Process] = [:]

    func start(_ id: String, options: Dashboard.Options, logFile: String) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: options.supervisorExecutable)
        process.arguments = ["job-supervisor", "--gcs-address", options.gcsAddress, "--submission-id", id,
                             "--log-file", logFile, "--packages-dir", options.packagesDirectory]
        let output = "\(options.logDirectory)/job-supervisor-\(id).err"
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.terminationHandler = { [weak self] done in
            guard let self else { return }
            _ = lock.withLock { running.removeValue(forKey: done.processIdentifier) }
        }
        try process.run()
        let pid = process.processIdentifier
        lock.withLock { running[pid] = process }
        return pid
    }

    /// True while `pid` is a live job supervisor (not gone, not a zombie): one this server started
    /// by that alone (its command line may still be ours just after the spawn, and
    /// Process.isRunning stayed true here for one killed with SIGKILL); another, started before a
    /// restart of this server, only if it runs `job-supervisor` (a pid may have been reused).
    func isAlive(_ pid: Int32) -> Bool {
        guard ProcFile.isRunning(pid) else { return false }
        return lock.withLock({ running[pid] != nil }) || ProcFile.arguments(pid).contains("job-supervisor")
    }

    /// The last lines a supervisor wrote to its stderr (why it died, if it said).
    static func lastWords(_ id: String, logDirectory: String) -> String {
        let text = (try? String(contentsOfFile: "\(logDirectory)/job-supervisor-\(id).err", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(5).joined(separator: "\n")
    }
}
