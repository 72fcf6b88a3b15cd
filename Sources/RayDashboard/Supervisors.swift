import Foundation

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

    /// True while `pid` is a live job supervisor: one this server started is alive until it was
    /// reaped; another (started before a restart of this server) while /proc says it runs
    /// `job-supervisor` (a zombie, or a reused pid, does not).
    func isAlive(_ pid: Int32) -> Bool {
        // Not by its command line, which may still be ours for a moment after the spawn, and not by
        // Process.isRunning, which stayed true here for a supervisor killed with SIGKILL.
        if lock.withLock({ running[pid] != nil }) { return Self.isRunningProcess(pid) }
        return Self.runsSupervisor(pid)
    }

    /// True if `pid` exists and is not a zombie (/proc/<pid>/stat's state).
    static func isRunningProcess(_ pid: Int32) -> Bool {
        let fd = open("/proc/\(pid)/stat", O_RDONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 512)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0, let close = bytes[0..<n].lastIndex(of: UInt8(ascii: ")")), close + 2 < n else { return false }
        let state = bytes[close + 2]
        return state != UInt8(ascii: "Z") && state != UInt8(ascii: "X")
    }

    /// The last lines a supervisor wrote to its stderr (why it died, if it said).
    static func lastWords(_ id: String, logDirectory: String) -> String {
        let text = (try? String(contentsOfFile: "\(logDirectory)/job-supervisor-\(id).err", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(5).joined(separator: "\n")
    }

    static func runsSupervisor(_ pid: Int32) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return false }
        // /proc files report size 0: read them with read(2).
        let fd = open("/proc/\(pid)/cmdline", O_RDONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        return n > 0 && String(decoding: bytes[0..<n], as: UTF8.self).contains("job-supervisor")
    }
}
