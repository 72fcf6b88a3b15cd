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

    /// True while `pid` is a live job supervisor (a zombie, or a reused pid, is not).
    static func isAlive(_ pid: Int32) -> Bool {
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
