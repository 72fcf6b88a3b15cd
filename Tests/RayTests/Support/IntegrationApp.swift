import Foundation
import Testing

/// Runs the built `ray-integration-app` (Sources/RayIntegrationApp) as a driver on its own embedded
/// cluster, whose workers are the same executable re-launched by the raylet. Checks afterwards that
/// no worker it started outlives it.
struct IntegrationApp {
    struct Run {
        var status: Int32
        var output: String
        var values: [String: String]
        var elapsed: Duration

        func int(_ key: String) -> Int? { values[key].flatMap { Int($0) } }
    }

    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ray-integration-app")
    }

    /// Runs `scenario`; kills it (and records an issue) if it outlives `timeout`. Its session folder
    /// (logs) goes in a fresh `RAY_TMPDIR`, removed afterwards unless `inspect` wants to look first.
    static func run(_ arguments: [String], environment extra: [String: String] = [:], timeout: Duration = .seconds(90),
                    inspect: ((Run) throws -> Void)? = nil)
        async throws -> Run
    {
        let app = try Running(arguments, environment: extra)
        let run = try await app.finish(timeout: timeout)
        try inspect?(run)
        return run
    }

    /// A scenario still running: its `key=value` lines can be read as they come.
    final class Running {
        let arguments: [String]
        let process = Process()
        let pid: pid_t
        let start = ContinuousClock.now
        private let temp: URL
        private let outputFile: URL
        private let handle: FileHandle

        /// `launcher` runs the app through another command (`["/usr/sbin/ip", "netns", "exec", name]`),
        /// which must exec it (the pid is the app's).
        init(_ arguments: [String], environment extra: [String: String] = [:], launcher: [String] = []) throws {
            self.arguments = arguments
            temp = FileManager.default.temporaryDirectory.appendingPathComponent("swift-ray-app-\(UUID().uuidString)")
            #expect(FileManager.default.fileExists(atPath: executable.path), "ray-integration-app must be built next to the tests")
            if let command = launcher.first {
                process.executableURL = URL(fileURLWithPath: command)
                process.arguments = Array(launcher.dropFirst()) + [executable.path] + arguments
            } else {
                process.executableURL = executable
                process.arguments = arguments
            }
            var environment = ProcessInfo.processInfo.environment
            environment["GRPC_VERBOSITY"] = "NONE"
            environment["RAY_ADDRESS"] = nil
            environment["RAY_TMPDIR"] = temp.path
            environment.merge(extra) { _, new in new }
            process.environment = environment
            outputFile = FileManager.default.temporaryDirectory.appendingPathComponent("app-\(UUID().uuidString).log")
            _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
            handle = try FileHandle(forWritingTo: outputFile)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            pid = process.processIdentifier
        }

        deinit {
            if process.isRunning { kill(pid, SIGKILL) }
            try? handle.close()
            try? FileManager.default.removeItem(at: outputFile)
            try? FileManager.default.removeItem(at: temp)
        }

        var output: String { (try? String(contentsOf: outputFile, encoding: .utf8)) ?? "" }

        /// The `key=value` lines printed so far (worker lines, `(pid=…) …`, are not the driver's).
        var values: [String: String] {
            var values: [String: String] = [:]
            for line in output.split(separator: "\n") {
                guard let equals = line.firstIndex(of: "="), !line.hasPrefix("(") else { continue }
                values[String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
            return values
        }

        /// Waits until the scenario printed `key`, and returns its value.
        func value(_ key: String, within timeout: Duration) async throws -> String {
            let deadline = ContinuousClock.now + timeout
            while true {
                if let value = values[key] { return value }
                guard process.isRunning else {
                    throw Failure("the app exited (status \(process.terminationStatus)) without printing \(key):\n\(output)")
                }
                guard ContinuousClock.now < deadline else {
                    throw Failure("the app did not print \(key) within \(timeout):\n\(output)")
                }
                try await Task.sleep(for: .milliseconds(10))
            }
        }

        /// Waits for the app to exit (killing it past `timeout`) and for its workers to go.
        func finish(timeout: Duration) async throws -> Run {
            let deadline = start + timeout
            var killed = false
            while process.isRunning {
                if ContinuousClock.now > deadline && !killed {
                    kill(pid, SIGKILL)
                    killed = true
                    Issue.record("`ray-integration-app \(arguments.joined(separator: " "))` did not finish within \(timeout)")
                }
                if ContinuousClock.now > deadline + .seconds(10) {
                    // Killed, yet Foundation still sees it running (a descendant holds on): give up on it.
                    Issue.record("`ray-integration-app \(arguments.joined(separator: " "))` (pid \(pid)) still counts as running 10 s after SIGKILL")
                    break
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            if !process.isRunning { process.waitUntilExit() }
            let elapsed = ContinuousClock.now - start
            try await expectNoWorkersLeft(startedBy: pid)
            return Run(status: process.isRunning ? -1 : process.terminationStatus, output: output, values: values, elapsed: elapsed)
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Waits (up to 5 s) until no process started by the raylet in `pid` is alive.
    static func expectNoWorkersLeft(startedBy pid: pid_t) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        var left = workers(startedBy: pid)
        while !left.isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            left = workers(startedBy: pid)
        }
        #expect(left.isEmpty, "workers \(left) outlived their driver \(pid)")
        for worker in left { kill(worker, SIGKILL) }
    }

    /// Live processes whose environment says the raylet in `pid` started them.
    static func workers(startedBy pid: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid_t($0) }.filter { candidate in
            guard let environ = FileManager.default.contents(atPath: "/proc/\(candidate)/environ") else { return false }
            let marker = Array("RAY_RAYLET_PID=\(pid)".utf8)
            let isWorker = environ.split(separator: 0).contains { Array($0) == marker }
            return isWorker && processIsAlive(candidate)
        }
    }
}

/// Alive and not a zombie.
func processIsAlive(_ pid: pid_t) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return false }
    return stat[stat.index(close, offsetBy: 2)] != "Z"
}
