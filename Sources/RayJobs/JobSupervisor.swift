import Foundation
import RayCommon
import RayGCSClient

/// Runs one submitted job's entrypoint and reports its fate (Ray's JobSupervisor actor, as a small
/// process of its own on the head, so jobs outlive a restart of the HTTP server): the working
/// directory unpacked, `/bin/sh -c <entrypoint>` in a process group of its own with `RAY_ADDRESS` and
/// `RAY_JOB_SUBMISSION_ID` set, its output appended to the job's log file, RUNNING once it started and
/// SUCCEEDED / FAILED / STOPPED when it ends. SIGTERM stops the job: SIGTERM to its process group,
/// SIGKILL after `stopGrace`.
public final class JobSupervisor: @unchecked Sendable {
    public struct Options: Sendable {
        public var submissionID: String
        public var gcsAddress: String
        public var logFile: String
        /// Where working-directory packages are unpacked (one folder per package).
        public var packagesDirectory: String
        /// Ray's RAY_JOB_STOP_WAIT_TIME_S (3 s).
        public var stopGrace: Duration = .seconds(3)
        public var nodeID: String?
        public var nodeIP: String = "127.0.0.1"

        public init(submissionID: String, gcsAddress: String, logFile: String, packagesDirectory: String) {
            self.submissionID = submissionID
            self.gcsAddress = gcsAddress
            self.logFile = logFile
            self.packagesDirectory = packagesDirectory
        }
    }

    let options: Options
    let store: JobStore
    private let lock = NSLock()
    private var stopRequested = false
    private var processGroup: pid_t = 0
    /// The placement group holding the entrypoint's resources.
    private var held: PlacementGroupID?

    public init(options: Options) throws {
        self.options = options
        self.store = JobStore(gcs: try GCSClient(address: options.gcsAddress, timeout: .seconds(10)))
    }

    /// Ray's last-logs excerpt in a failure message.
    static let failureLogChars = 20_000

    /// Runs the job to its end; the process's exit code (0 when the job's state was recorded).
    public func run() async -> Int32 {
        installStopHandler()
        guard var info = try? await retrying({ try await self.store.info(self.options.submissionID) }) else {
            FileHandle.standardError.write(Data("job-supervisor: no job \(options.submissionID) in the GCS\n".utf8))
            return 1
        }
        guard !info.status.isTerminal else { return 0 }
        let log = open(options.logFile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard log >= 0 else {
            return await finish(&info, .FAILED, .JOB_ENTRYPOINT_COMMAND_START_ERROR,
                                "Could not open the job's log file \(options.logFile): \(String(cString: strerror(errno)))")
        }
        defer { close(log) }

        var directory: String?
        if let uri = info.runtimeEnv["working_dir"]?.stringValue {
            do {
                directory = try await RuntimeEnvPackage.materialize(uri, store: store, under: options.packagesDirectory)
            } catch {
                return await finish(&info, .FAILED, .RUNTIME_ENV_SETUP_FAILURE, "Failed to set up the runtime environment: \(error)")
            }
        }
        if isStopRequested { return await finish(&info, .STOPPED, nil, JobStatus.STOPPED.defaultMessage) }

        let head = try? await retrying { try await EntrypointReservation.head(gcs: self.store.gcs) }
        let needs = EntrypointReservation.resources(of: info)
        if !needs.isEmpty {
            guard let head = head ?? nil else {
                return await finish(&info, .FAILED, .JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE,
                                    "The job asks for entrypoint resources, but the cluster has no live head node to run it on.")
            }
            let reservation: EntrypointReservation
            do {
                // Recorded first: a supervisor that dies after asking leaves the dashboard a group to remove.
                let id = PlacementGroupID.random(job: .nil)
                try await retrying { try await self.store.setReservation(self.options.submissionID, group: id) }
                reservation = try await retrying { try await EntrypointReservation.request(needs, on: head.id, id: id, gcs: self.store.gcs) }
            } catch {
                return await finish(&info, .FAILED, .JOB_SUPERVISOR_ACTOR_START_FAILURE, "Could not reserve the job's entrypoint resources: \(error)")
            }
            lock.withLock { held = reservation.group }
            switch await reservation.wait(gcs: store.gcs, timeout: EntrypointReservation.startTimeout(), stopped: { self.isStopRequested }) {
            case .held: break
            case .stopped: return await finish(&info, .STOPPED, nil, JobStatus.STOPPED.defaultMessage)
            case .unschedulable(let message): return await finish(&info, .FAILED, .JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE, message)
            case .timedOut(let message): return await finish(&info, .FAILED, .JOB_SUPERVISOR_ACTOR_START_TIMEOUT, message)
            }
        }

        var environment = ProcessInfo.processInfo.environment
        environment["RAY_ADDRESS"] = options.gcsAddress
        environment[RuntimeEnvironment.submissionID] = options.submissionID
        if let directory, let uri = info.runtimeEnv["working_dir"]?.stringValue {
            environment[RuntimeEnvironment.workingDirURI] = uri
            environment[RuntimeEnvironment.workingDirPath] = directory
        }
        if let vars = info.runtimeEnv["env_vars"], case .object(let members) = vars {
            for member in members { if let value = member.value.stringValue { environment[member.key] = value } }
        }
        let pid: pid_t
        do {
            pid = try spawnShell(info.entrypoint, environment: environment, directory: directory, output: log)
        } catch {
            return await finish(&info, .FAILED, .JOB_ENTRYPOINT_COMMAND_START_ERROR, "Failed to start the entrypoint: \(error)")
        }
        lock.withLock { processGroup = pid }
        if isStopRequested { signalGroup(SIGTERM) }

        info.status = .RUNNING
        info.message = JobStatus.RUNNING.defaultMessage
        info.driverPID = pid
        info.driverNodeID = options.nodeID ?? (head ?? nil)?.id
        info.driverNodeIP = (head ?? nil)?.ip ?? options.nodeIP
        let running = info
        _ = try? await retrying { try await self.store.update(running) }

        let status = await Self.wait(for: pid)
        lock.withLock { processGroup = 0 }
        info.driverExitCode = status
        if isStopRequested {
            kill(-pid, SIGKILL)  // whatever the entrypoint left in its group
            return await finish(&info, .STOPPED, nil, JobStatus.STOPPED.defaultMessage)
        }
        if status == 0 { return await finish(&info, .SUCCEEDED, nil, JobStatus.SUCCEEDED.defaultMessage) }
        let tail = Self.tail(of: options.logFile, characters: Self.failureLogChars)
        return await finish(&info, .FAILED, .JOB_ENTRYPOINT_COMMAND_ERROR,
                            "Job entrypoint command failed with exit code \(status), last available logs (truncated to 20,000 chars):\n\(tail)")
    }

    private var isStopRequested: Bool { lock.withLock { stopRequested } }

    private func finish(_ info: inout JobInfo, _ status: JobStatus, _ error: JobErrorType?, _ message: String) async -> Int32 {
        if let group = lock.withLock({ held }) { await EntrypointReservation.release(group, gcs: store.gcs) }
        info.status = status
        info.errorType = error
        info.message = message
        info.endTime = JobInfo.now()
        let final = info
        do {
            try await retrying { try await self.store.update(final) }
            return 0
        } catch {
            FileHandle.standardError.write(Data("job-supervisor: could not record \(status) for \(info.submissionID): \(error)\n".utf8))
            return 1
        }
    }

    /// Tries `body` until it succeeds or 30 s pass (the GCS may be restarting).
    private func retrying<T>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            do { return try await body() } catch {
                if ContinuousClock.now > deadline { throw error }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    // MARK: stopping

    private func installStopHandler() {
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        for number in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in self?.stop() }
            source.resume()
            SignalSources.keep(source)
        }
    }

    /// SIGTERM to the entrypoint's group now, SIGKILL after the grace period.
    func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopRequested = true }
            return !stopRequested
        }
        guard first else { return }
        signalGroup(SIGTERM)
        let grace = options.stopGrace
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(grace / .milliseconds(1)))) { [weak self] in
            self?.signalGroup(SIGKILL)
        }
    }

    private func signalGroup(_ number: Int32) {
        let group = lock.withLock { processGroup }
        if group > 0 { kill(-group, number) }
    }

    // MARK: processes

    struct SpawnError: Error, CustomStringConvertible {
        let description: String
    }

    /// `/bin/sh -c command` in a new process group, stdin from /dev/null, stdout and stderr to `output`.
    func spawnShell(_ command: String, environment: [String: String], directory: String?, output: Int32) throws -> pid_t {
        if let directory, !FileManager.default.changeCurrentDirectoryPath(directory) {
            throw SpawnError(description: "cannot enter the working directory \(directory)")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output, 1)
        posix_spawn_file_actions_adddup2(&actions, output, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setpgroup(&attributes, 0)
        // The child starts with default signal handling (this process ignores SIGTERM and SIGINT).
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGTERM)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let arguments = ["/bin/sh", "-c", command]
        let environmentStrings = environment.map { "\($0.key)=\($0.value)" }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environmentStrings.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, "/bin/sh", &actions, &attributes, &argv, &envp)
        guard result == 0 else { throw SpawnError(description: "posix_spawn /bin/sh: \(String(cString: strerror(result)))") }
        return pid
    }

    /// The child's exit code (a signal's death is minus its number, as Python's returncode says).
    static func wait(for pid: pid_t) async -> Int32 {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : -(status & 0x7f)
                continuation.resume(returning: code)
            }
        }
    }

    /// The last `characters` characters of a file.
    static func tail(of path: String, characters: Int) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        let start = size > UInt64(characters * 4) ? size - UInt64(characters * 4) : 0
        try? handle.seek(toOffset: start)
        let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        return String(text.suffix(characters))
    }
}

/// Keeps signal sources alive for the life of the process.
enum SignalSources {
    nonisolated(unsafe) private static var retained: [any DispatchSourceSignal] = []
    static func keep(_ source: any DispatchSourceSignal) { retained.append(source) }
}
