import Foundation
import ZIPFoundation

extension RuntimeEnvPackage {
    /// The most a package may unpack to (a zip bomb is refused before anything is written).
    public static let maxUnpackedBytes: UInt64 = 4 * 1024 * 1024 * 1024

    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    /// Checks that `bytes` is a zip whose every entry stays inside the folder it unpacks to.
    public static func validate(_ bytes: Data) throws(Invalid) {
        // A zip ends with its end-of-central-directory record (within its last 64 KiB + 22 bytes).
        let tail = bytes.suffix(65_557)
        let signature: [UInt8] = [0x50, 0x4B, 0x05, 0x06]
        guard bytes.count >= 22, tail.indices.dropLast(3).contains(where: { i in
            bytes[i] == signature[0] && bytes[i + 1] == signature[1] && bytes[i + 2] == signature[2] && bytes[i + 3] == signature[3]
        }) else {
            throw Invalid("the package is not a zip archive (no end-of-central-directory record)")
        }
        // Read from a file, not from memory: ZIPFoundation's in-memory archive leaks its buffer when
        // opening fails (seen under LeakSanitizer).
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("swift-ray-package-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).zip")
        defer { try? FileManager.default.removeItem(at: file) }
        let archive: Archive
        do {
            try bytes.write(to: file)
            archive = try Archive(url: file, accessMode: .read)
        } catch {
            throw Invalid("the package is not a zip archive (\(error))")
        }
        var total: UInt64 = 0
        var count = 0
        for entry in archive {
            count += 1
            let path = entry.path
            let components = path.split(separator: "/", omittingEmptySubsequences: true)
            if path.hasPrefix("/") || path.contains("\\") || components.contains("..") || path.utf8.contains(0) {
                throw Invalid("the package's entry '\(path)' would be written outside its working directory")
            }
            if entry.type == .symlink {
                var target = Data()
                do { _ = try archive.extract(entry, skipCRC32: true) { target.append($0) } } catch {
                    throw Invalid("the package's symlink '\(path)' cannot be read (\(error))")
                }
                let link = String(decoding: target, as: UTF8.self)
                let depth = components.count - 1
                if link.hasPrefix("/") || escapes(link, fromDepth: depth) {
                    throw Invalid("the package's symlink '\(path)' points outside its working directory (to '\(link)')")
                }
            }
            total += entry.uncompressedSize
            if total > maxUnpackedBytes { throw Invalid("the package unpacks to more than \(maxUnpackedBytes) bytes") }
        }
        if count == 0 && bytes.count > 22 { throw Invalid("the package is not a zip archive (no entries found)") }
    }

    /// True if a relative link, followed from a folder `depth` levels deep, climbs above the root.
    static func escapes(_ link: String, fromDepth depth: Int) -> Bool {
        var level = depth
        for part in link.split(separator: "/", omittingEmptySubsequences: true) {
            if part == ".." { level -= 1 } else if part != "." { level += 1 }
            if level < 0 { return true }
        }
        return false
    }

    /// The folder the package `uri` is unpacked to under `root` (fetched from the GCS and unpacked
    /// once; later callers reuse it).
    public static func materialize(_ uri: String, store: JobStore, under root: String) async throws -> String {
        guard let (_, name) = parseURI(uri) else { throw Invalid("'\(uri)' is not a package URI (gcs://<name>.zip)") }
        let folder = URL(fileURLWithPath: root).appendingPathComponent(String(name.dropLast(4)))
        if FileManager.default.fileExists(atPath: folder.path) { return folder.path }
        guard let bytes = try await store.package(uri) else {
            throw Invalid("the package \(uri) is not in the GCS (upload it with PUT /api/packages/gcs/\(name))")
        }
        try validate(bytes)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let staging = URL(fileURLWithPath: root).appendingPathComponent(".\(name).\(getpid()).\(UInt32.random(in: 0...UInt32.max))")
        let zip = staging.appendingPathExtension("zip")
        defer {
            try? FileManager.default.removeItem(at: zip)
            try? FileManager.default.removeItem(at: staging)
        }
        try bytes.write(to: zip)
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        try FileManager.default.unzipItem(at: zip, to: staging)
        // Another process may have unpacked the same package meanwhile: either copy will do.
        if rename(staging.path, folder.path) != 0 && !FileManager.default.fileExists(atPath: folder.path) {
            throw Invalid("cannot move the unpacked package to \(folder.path): \(String(cString: strerror(errno)))")
        }
        return folder.path
    }
}
