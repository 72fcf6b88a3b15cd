#if canImport(Glibc)
import Glibc
#endif
import RayCommon

/// A file in /dev/shm mapped into this process. The raylet creates one per node; workers on the node
/// map the same file by name and read objects in place, without copying them.
public final class SharedMemoryRegion: @unchecked Sendable {
    public let name: String
    public let size: Int
    public let base: UnsafeMutableRawPointer
    private let owner: Bool

    /// Creates a new region of `size` bytes (the name must not exist yet); it is unlinked on deinit.
    public init(creating name: String, size: Int) throws(RayError) {
        guard size > 0 else { throw RayError(.objectStoreFull, "an object store needs a positive size") }
        let path = Self.path(name)
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw RayError(.objectStoreFull, "cannot create \(path): \(Self.lastError())") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else {
            let message = Self.lastError()
            unlink(path)
            throw RayError(.objectStoreFull, "cannot size \(path) to \(size) bytes: \(message)")
        }
        guard let base = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), base != MAP_FAILED else {
            let message = Self.lastError()
            unlink(path)
            throw RayError(.objectStoreFull, "cannot map \(path): \(message)")
        }
        self.name = name
        self.size = size
        self.base = base
        self.owner = true
    }

    /// Maps an existing region by name.
    public init(opening name: String) throws(RayError) {
        let path = Self.path(name)
        let fd = open(path, O_RDWR)
        guard fd >= 0 else { throw RayError(.objectLost, "cannot open \(path): \(Self.lastError())") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size > 0 else {
            throw RayError(.objectLost, "cannot read the size of \(path)")
        }
        let size = Int(info.st_size)
        guard let base = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), base != MAP_FAILED else {
            throw RayError(.objectLost, "cannot map \(path): \(Self.lastError())")
        }
        self.name = name
        self.size = size
        self.base = base
        self.owner = false
    }

    deinit {
        munmap(base, size)
        if owner { unlink(Self.path(name)) }
    }

    static func path(_ name: String) -> String { "/dev/shm/\(name)" }

    private static func lastError() -> String { String(cString: strerror(errno)) }
}
