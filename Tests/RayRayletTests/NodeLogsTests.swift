import Foundation
@testable import RayRaylet
import Testing

/// Where a log's last lines start, for files with and without a final newline and fewer lines
/// than asked; and which names are refused.
@Suite struct NodeLogsTests {
    func start(of text: String, lines: Int64) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("nodelogs-\(UUID().uuidString).log").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let offset = NodeLogs.startOfLastLines(fd, size: Int64(text.utf8.count), lines: lines)
        return String(decoding: Array(text.utf8)[Int(offset)...], as: UTF8.self)
    }

    @Test func lastLinesStartWhereTheyShould() throws {
        #expect(try start(of: "a\nb\nc\n", lines: 1) == "c\n")
        #expect(try start(of: "a\nb\nc\n", lines: 2) == "b\nc\n")
        #expect(try start(of: "a\nb\nc", lines: 1) == "c")
        #expect(try start(of: "a\nb\nc", lines: 2) == "b\nc")
        #expect(try start(of: "a\nb\n", lines: 5) == "a\nb\n")
        #expect(try start(of: "a\nb\n", lines: -1) == "a\nb\n")
        #expect(try start(of: "a\nb\n", lines: 0) == "")
        #expect(try start(of: "", lines: 3) == "")
        // Longer than one read block.
        let long = (0..<20_000).map { "line \($0)" }.joined(separator: "\n") + "\n"
        #expect(try start(of: long, lines: 3) == "line 19997\nline 19998\nline 19999\n")
    }

    @Test func namesOutsideTheLogDirectoryAreRefused() {
        for name in ["../secret", "/etc/passwd", "a/../../b", ""] {
            #expect(throws: (any Error).self) { try NodeLogs.resolve("/tmp", name) }
        }
    }
}
