import Foundation
import RayCommon

/// The dashboard of an embedded cluster: `ray dashboard` as a child process (Hummingbird lives in the
/// `ray` command, not in user programs), stopped with the cluster.
final class EmbeddedDashboard: Sendable {
    let url: String
    private let process: Process

    private init(url: String, process: Process) {
        self.url = url
        self.process = process
    }

    /// The `ray` command: the one given, `$RAY_EXECUTABLE`, or the first `ray` on the PATH.
    static func findRay(_ given: String?) -> String? {
        if let given { return given }
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["RAY_EXECUTABLE"], !path.isEmpty { return path }
        for directory in (environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(directory)/ray"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    static func start(gcsAddress: String, sessionDirectory: String, port: Int, executable: String?) async throws -> EmbeddedDashboard {
        guard let ray = findRay(executable) else {
            throw RayError(.system, "includeDashboard needs the `ray` command: put it on the PATH, set RAY_EXECUTABLE, or give rayExecutable")
        }
        let portFile = "\(sessionDirectory)/dashboard-\(getpid()).port"
        try? FileManager.default.removeItem(atPath: portFile)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ray)
        process.arguments = ["dashboard", "--gcs-address", gcsAddress, "--port", String(port), "--session-dir", sessionDirectory,
                             "--port-file", portFile]
        let log = "\(sessionDirectory)/logs/dashboard.err"
        FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log)
        process.standardOutput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw RayError(.system, "could not start the dashboard (\(ray) dashboard)", cause: "\(error)")
        }
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let bound = Int(text) {
                return EmbeddedDashboard(url: "http://127.0.0.1:\(bound)", process: process)
            }
            if !process.isRunning {
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                throw RayError(.system, "the dashboard exited during start-up", cause: String(text.suffix(2000)))
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        process.terminate()
        throw RayError(.system, "the dashboard did not report its port within 15 s (see \(log))")
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }
}
