import Foundation
import RayProtos
import RayRPC

/// The node's log files as the dashboard asks for them (Ray's LogService on its agent): listing by
/// glob, and a file's last lines, then what is appended while the caller follows it.
enum NodeLogs {
    /// A message of the stream carries at most this many bytes.
    static let chunkBytes = 1 << 20

    /// The regular files under `directory` (relative names, sorted) whose names match `glob`.
    static func list(_ directory: String, glob: String) -> [String] {
        let pattern = glob.isEmpty ? "*" : glob
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return [] }
        var names: [String] = []
        while let name = walker.nextObject() as? String {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: "\(directory)/\(name)", isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            if fnmatch(pattern, name, 0) == 0 { names.append(name) }
        }
        return names.sorted()
    }

    /// The file's path, if `name` names a file inside `directory`.
    static func resolve(_ directory: String, _ name: String) throws(RPCError) -> String {
        guard !name.isEmpty, !name.hasPrefix("/"), !name.split(separator: "/").contains("..") else {
            throw RPCError(code: .invalidArgument, message: "log file name '\(name)' must be relative to the node's log directory, without '..'")
        }
        let path = "\(directory)/\(name)"
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw RPCError(code: .notFound, message: "no log file \(name) on this node")
        }
        return path
    }

    /// Where the last `lines` lines of the open file start (0 for -1, or when it has fewer).
    static func startOfLastLines(_ fd: Int32, size: Int64, lines: Int64) -> Int64 {
        guard lines >= 0 else { return 0 }
        if lines == 0 { return size }
        var newlines: Int64 = 0
        var position = size
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var first = true
        while position > 0 {
            let count = Int(min(Int64(buffer.count), position))
            position -= Int64(count)
            let read = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(position)) }
            guard read == count else { return 0 }
            for index in stride(from: count - 1, through: 0, by: -1) where buffer[index] == UInt8(ascii: "\n") {
                // A newline that ends the file ends the last line; it does not start one.
                if first && position + Int64(index) == size - 1 { continue }
                newlines += 1
                if newlines == lines { return position + Int64(index) + 1 }
            }
            first = false
        }
        return 0
    }

    /// Sends the file's last lines, then (keep_alive) what is appended, until the caller goes away.
    static func stream(_ request: Ray_Rpc_StreamLogRequest, directory: String, to writer: RPCWriter<Ray_Rpc_LogChunk>) async throws {
        let path = try resolve(directory, request.filename)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RPCError(code: .notFound, message: "cannot open log file \(request.filename): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var offset = startOfLastLines(fd, size: Int64(lseek(fd, 0, SEEK_END)), lines: request.lines)
        let interval = Duration.milliseconds(Int64((request.intervalS > 0 ? min(request.intervalS, 60) : 0.5) * 1000))
        var buffer = [UInt8](repeating: 0, count: chunkBytes)
        while true {
            let read = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
            if read > 0 {
                var chunk = Ray_Rpc_LogChunk()
                chunk.data = Data(buffer[0..<read])
                try await writer.write(chunk)
                offset += Int64(read)
                continue
            }
            guard request.keepAlive, !Task.isCancelled else { return }
            try await Task.sleep(for: interval)
        }
    }
}
