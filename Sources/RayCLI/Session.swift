import Foundation

/// A cluster started on this machine by `ray start`: its folder (logs, ports, the processes it
/// started) under the temp dir, as Ray's `/tmp/ray/session_*`.
struct Session {
    let directory: URL

    /// `--temp-dir`, else `RAY_TMPDIR`, else /tmp/swift-ray (apart from a Python Ray's /tmp/ray).
    static func tempDirectory(_ option: String?) -> URL {
        URL(fileURLWithPath: option ?? ProcessInfo.processInfo.environment["RAY_TMPDIR"] ?? "/tmp/swift-ray")
    }

    static func create(in temp: URL) throws -> Session {
        let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "-")
        let directory = temp.appendingPathComponent("session_\(stamp)_\(getpid())")
        try FileManager.default.createDirectory(
            at: directory.appendingPathComponent("logs"), withIntermediateDirectories: true)
        let latest = temp.appendingPathComponent("session_latest")
        try? FileManager.default.removeItem(at: latest)
        try? FileManager.default.createSymbolicLink(at: latest, withDestinationURL: directory)
        return Session(directory: directory)
    }

    static func all(in temp: URL) -> [Session] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: temp.path)) ?? []
        return names.filter { $0.hasPrefix("session_") && $0 != "session_latest" }.sorted()
            .map { Session(directory: temp.appendingPathComponent($0)) }
    }

    var logs: URL { directory.appendingPathComponent("logs") }
    var processesFile: URL { directory.appendingPathComponent("processes") }

    /// The processes this session started: "role pid" lines.
    func processes() -> [(role: String, pid: pid_t)] {
        guard let text = try? String(contentsOf: processesFile, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ")
            guard parts.count == 2, let pid = pid_t(parts[1]) else { return nil }
            return (String(parts[0]), pid)
        }
    }

    func record(role: String, pid: pid_t) throws {
        let line = "\(role) \(pid)\n"
        if let handle = try? FileHandle(forWritingTo: processesFile) {
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(line.utf8))
        } else {
            try Data(line.utf8).write(to: processesFile)
        }
    }

    func forgetProcesses() { try? FileManager.default.removeItem(at: processesFile) }

    /// Stops the session's processes (raylets first, so they unregister from a GCS that still runs),
    /// forgets them, and removes the session's /dev/shm files.
    @discardableResult
    func stopAll() -> (stopped: Int, failed: [pid_t]) {
        var stopped = 0
        var failed: [pid_t] = []
        for process in processes().reversed() {
            let marker = Processes.marker(role: process.role)
            guard Processes.isRunning(process.pid, marker: marker) else { continue }
            if Processes.stop(process.pid, marker: marker) { stopped += 1 } else { failed.append(process.pid) }
        }
        forgetProcesses()
        removeSharedMemory()
        return (stopped, failed)
    }

    private var sharedMemoryFile: URL { directory.appendingPathComponent("shared_memory") }

    /// Notes a /dev/shm file the session's daemons create, for `ray stop` to remove.
    func recordSharedMemory(_ name: String) throws {
        try Data((name + "\n").utf8).write(to: sharedMemoryFile)
    }

    /// Removes the session's /dev/shm files (after its processes stopped).
    func removeSharedMemory() {
        guard let text = try? String(contentsOf: sharedMemoryFile, encoding: .utf8) else { return }
        for name in text.split(separator: "\n") where !name.contains("/") {
            unlink("/dev/shm/\(name)")
        }
        try? FileManager.default.removeItem(at: sharedMemoryFile)
    }

    /// Where `ray start` leaves the address for `ray status` and drivers.
    static func currentClusterFile(in temp: URL) -> URL { temp.appendingPathComponent("ray_current_cluster") }
}

/// Process helpers.
enum Processes {
    /// This executable's path, to start daemons from the same binary.
    static var selfPath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// What a daemon's command line contains: its subcommand.
    static func marker(role: String) -> String { role == "gcs_server" ? "gcs-server" : role }

    /// True while `pid` runs and its command line mentions `marker` (so a reused pid is never signalled).
    static func isRunning(_ pid: pid_t, marker: String) -> Bool {
        guard exists(pid), let cmdline = readProcFile("/proc/\(pid)/cmdline") else { return false }
        return String(decoding: cmdline, as: UTF8.self).contains(marker)
    }

    /// A /proc file's bytes. (/proc files report size 0, so read them with plain read(2).)
    static func readProcFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }

    /// SIGTERM, then SIGKILL after `grace`; true when the process is gone.
    @discardableResult
    static func stop(_ pid: pid_t, marker: String, grace: TimeInterval = 5) -> Bool {
        guard isRunning(pid, marker: marker) else { return true }
        kill(pid, SIGTERM)
        // Once signalled, wait for the process itself, not its command line: an exiting process
        // loses its command line before it is gone.
        let deadline = Date().addingTimeInterval(grace)
        while Date() < deadline {
            if !exists(pid) { return true }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        let killDeadline = Date().addingTimeInterval(2)
        while Date() < killDeadline {
            if !exists(pid) { return true }
            usleep(10_000)
        }
        return false
    }

    /// True until `pid` has exited (a zombie counts as exited).
    static func exists(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let raw = readProcFile("/proc/\(pid)/stat"), case let stat = String(decoding: raw, as: UTF8.self),
              let close = stat.lastIndex(of: ")"), stat.index(close, offsetBy: 2) < stat.endIndex
        else { return false }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }
}
