#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import RayCommon
import Synchronization

/// One worker process the raylet started: the job's executable re-launched in worker mode, its
/// stdout and stderr read by a thread of its own that writes them to the worker's log files, hands
/// complete lines on (for the driver's `(pid=…)` lines), and reaps the process when both pipes close.
final class WorkerProcess: Sendable {
    let pid: pid_t
    let workerID: WorkerID

    /// Starts `executable` with `arguments` and `environment` (added to this process's). `onLines` gets
    /// complete lines as they come (stderr: `isError`); `onExit` the wait status once the process is gone.
    init(
        workerID: WorkerID, executable: String, arguments: [String], environment: [String: String],
        workingDirectory: String?, logDirectory: String,
        onLines: @escaping @Sendable (_ pid: pid_t, _ isError: Bool, _ lines: [String]) -> Void,
        onExit: @escaping @Sendable (_ pid: pid_t, _ status: Int32) -> Void
    ) throws(RayError) {
        self.workerID = workerID
        var out: [Int32] = [0, 0]
        var err: [Int32] = [0, 0]
        guard pipe(&out) == 0 else { throw RayError(.workerCrashed, "pipe: \(String(cString: strerror(errno)))") }
        guard pipe(&err) == 0 else {
            close(out[0]); close(out[1])
            throw RayError(.workerCrashed, "pipe: \(String(cString: strerror(errno)))")
        }
        // Only the child's stdout and stderr (dup2 clears the flag) may outlive the exec.
        for fd in out + err { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_adddup2(&actions, err[1], 2)
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        // Glibc's posix_spawn has no chdir action here: the worker changes directory itself.
        if let workingDirectory { env["RAY_WORKER_WORKING_DIR"] = workingDirectory }
        let argv = [executable] + arguments
        let envp = env.map { "\($0.key)=\($0.value)" }
        var child: pid_t = 0
        let status = withCStrings(argv) { argvC in
            withCStrings(envp) { envpC in posix_spawn(&child, executable, &actions, nil, argvC, envpC) }
        }
        close(out[1])
        close(err[1])
        guard status == 0 else {
            close(out[0]); close(err[0])
            throw RayError(.workerCrashed, "cannot start worker \(executable): \(String(cString: strerror(status)))")
        }
        pid = child
        let spawned = child
        let logBase = "\(logDirectory)/worker-\(workerID.hex)-\(child)"
        let reader = PipeReader(
            pid: spawned, fds: [out[0], err[0]], logPaths: [logBase + ".out", logBase + ".err"], onLines: onLines)
        startThread {
            reader.run()
            var wstatus: Int32 = 0
            while waitpid(spawned, &wstatus, 0) < 0 && errno == EINTR {}
            onExit(spawned, wstatus)
        }
    }

    /// Sends `signal` to the worker (SIGTERM to stop it, SIGKILL to end it at once).
    func signal(_ signal: Int32) { kill(pid, signal) }
}

/// Reads a worker's pipes until both close: every byte goes to its log file, complete lines to `onLines`.
private final class PipeReader: @unchecked Sendable {
    let pid: pid_t
    let fds: [Int32]
    let logs: [Int32]
    let onLines: @Sendable (pid_t, Bool, [String]) -> Void

    init(pid: pid_t, fds: [Int32], logPaths: [String], onLines: @escaping @Sendable (pid_t, Bool, [String]) -> Void) {
        self.pid = pid
        self.fds = fds
        self.logs = logPaths.map { open($0, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) }
        self.onLines = onLines
    }

    func run() {
        var open = fds.map { _ in true }
        var partial: [[UInt8]] = fds.map { _ in [] }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while open.contains(true) {
            var polls = fds.enumerated().map { i, fd in pollfd(fd: open[i] ? fd : -1, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&polls, nfds_t(polls.count), -1)
            if ready < 0 { if errno == EINTR { continue } else { break } }
            for i in polls.indices where open[i] && polls[i].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(fds[i], $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 {
                    open[i] = false
                    if !partial[i].isEmpty { onLines(pid, i == 1, [String(decoding: partial[i], as: UTF8.self)]) }
                    continue
                }
                if logs[i] >= 0 { _ = buffer.withUnsafeBytes { write(logs[i], $0.baseAddress, count) } }
                partial[i].append(contentsOf: buffer[0..<count])
                if let lastNewline = partial[i].lastIndex(of: UInt8(ascii: "\n")) {
                    let lines = partial[i][..<lastNewline].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
                        .map { String(decoding: $0, as: UTF8.self) }
                    partial[i].removeSubrange(...lastNewline)
                    onLines(pid, i == 1, lines)
                }
            }
        }
        for fd in fds { close(fd) }
        for fd in logs where fd >= 0 { close(fd) }
    }
}

/// Runs `body` on a new detached thread (one per worker: it blocks in poll and waitpid).
private func startThread(_ body: @escaping @Sendable () -> Void) {
    final class Box { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }
    var thread = pthread_t()
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    let status = pthread_create(&thread, nil, { context in
        let box = Unmanaged<Box>.fromOpaque(context!).takeRetainedValue()
        box.body()
        return nil
    }, context)
    if status == 0 { pthread_detach(thread) } else { Unmanaged<Box>.fromOpaque(context).release() }
}

/// Calls `body` with a NULL-terminated array of C strings that live for the call.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { strdup($0) }
    defer { pointers.forEach { free($0) } }
    var array: [UnsafeMutablePointer<CChar>?] = pointers + [nil]
    return array.withUnsafeMutableBufferPointer { body(Array($0)) }
}
