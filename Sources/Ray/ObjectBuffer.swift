import RayCommon
import RayCoreWorker

/// The elements of an array object, read where they are: in the node's shared-memory store when the
/// object is large (no copy however big it is), else in this process's memory. Holds a reference to
/// the object, so it stays alive as long as the buffer does.
public struct ObjectBuffer<Element: _TrivialScalar>: RandomAccessCollection, @unchecked Sendable {
    /// Where the elements start: in shared memory, or at `offset` in `inline`.
    @usableFromInline let base: UnsafeRawPointer?
    @usableFromInline let offset: Int
    public let count: Int
    /// What keeps the bytes alive: the object's reference, and inline bytes when not shared.
    @usableFromInline let owner: AnyObject
    @usableFromInline let inline: [UInt8]?

    // Inlinable down to the element reads, so a caller's loop over the buffer is specialized for its
    // element type (a plain release build does not optimize across modules).
    @inlinable
    init(_ resolved: ResolvedObject, keeping reference: AnyObject) throws {
        owner = reference
        switch resolved {
        case .inline(let bytes):
            inline = bytes
            base = nil
            (offset, count) = try bytes.withUnsafeBytes { try Self.parse($0) }
        case .shared(let shared):
            inline = nil
            let (start, elements) = try Self.parse(shared.buffer)
            (offset, count) = (start, elements)
            base = shared.buffer.baseAddress.map { UnsafeRawPointer($0) + start }
        }
    }

    /// The array's header (a varint element count) and where its elements start.
    @inlinable
    static func parse(_ bytes: UnsafeRawBufferPointer) throws -> (Int, Int) {
        var count = 0
        var shift = 0
        var index = 0
        while true {
            guard index < bytes.count, shift < 64 else {
                throw RayError(.serialization, "the object is not an array of \(Element.self)")
            }
            let byte = bytes[index]
            count |= Int(byte & 0x7F) << shift
            index += 1
            if byte & 0x80 == 0 { break }
            shift += 7
        }
        guard count >= 0, count <= (bytes.count - index) / MemoryLayout<Element>.stride else {
            throw RayError(.serialization, "the object holds fewer bytes than \(count) \(Element.self) need")
        }
        return (index, count)
    }

    @inlinable public var startIndex: Int { 0 }
    @inlinable public var endIndex: Int { count }

    @inlinable
    public subscript(position: Int) -> Element {
        precondition(position >= 0 && position < count, "ObjectBuffer index \(position) out of range 0..<\(count)")
        if let base { return base.loadUnaligned(fromByteOffset: position * MemoryLayout<Element>.stride, as: Element.self) }
        return inline!.withUnsafeBytes {
            $0.loadUnaligned(fromByteOffset: offset + position * MemoryLayout<Element>.stride, as: Element.self)
        }
    }

    /// The elements' bytes, in place.
    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(owner) {
            let size = count * MemoryLayout<Element>.stride
            if let base { return try body(UnsafeRawBufferPointer(start: base, count: size)) }
            return try inline!.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[offset..<offset + size])) }
        }
    }

    /// The elements copied into an array.
    @inlinable
    public var array: [Element] {
        [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0) }
            initialized = count
        }
    }
}
