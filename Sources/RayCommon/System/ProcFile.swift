#if canImport(Glibc)
import Glibc
#endif

/// Linux's /proc, read as its files must be: they report size 0, so with read(2) until the end.
public enum ProcFile {
    public static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// True if `pid` exists and is neither a zombie nor dead (the state in /proc/<pid>/stat).
    public static func isRunning(_ pid: Int32) -> Bool {
        guard pid > 0, let stat = read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[close...].dropFirst(2).first
        return state != nil && state != "Z" && state != "X"
    }

    /// The process's command line, its arguments split (empty for a zombie or a gone process).
    public static func arguments(_ pid: Int32) -> [String] {
        (read("/proc/\(pid)/cmdline") ?? "").split(separator: "\0").map(String.init)
    }
}
