#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Dispatch

/// Encodes `Encodable` values in swift-ray's binary format (see ``WireFormat``): fast, compact, and
/// contiguous arrays of numbers copied in one `memcpy`.
///
/// The generic entry points are `@inlinable` (and so is the path from them to a value's own
/// `encode(to:)`): a caller's module specializes them for its types, so its values are encoded without
/// runtime casts and generic metadata. (Package.swift may not ask for cross-module optimization.)
public struct BinaryEncoder: Sendable {
    @inlinable public init() {}

    /// The bytes of `value`.
    @inlinable
    public func encode<T: Encodable>(_ value: T) throws(SerializationError) -> [UInt8] {
        let sink = ByteSink()
        do {
            try sink.encodeValue(value, codingPath: [], slots: [])
        } catch let error as SerializationError {
            throw error
        } catch {
            throw SerializationError(.invalidValue, "\(T.self) failed to encode: \(error)")
        }
        return sink.bytes
    }

    /// For values whose encoding is one block (arrays of trivial numbers, `Data`): the encoded size and
    /// a writer that fills a buffer of that size with a header and one `memcpy`, so a large value can be
    /// encoded straight into shared memory. nil for every other value (use ``encode(_:)``).
    @inlinable
    public func directEncoding<T: Encodable>(_ value: T) -> DirectEncoding? {
        // A cast looks through Optional: an `[Int]?` would pass as a trivial array and lose its
        // presence byte. Asked only once a cast matched, so other values pay no third cast.
        let count: Int
        let raw: (UnsafeMutableRawPointer) -> Void
        if let array = value as? any TrivialArray {
            if value is any EncodableOptional { return nil }
            count = array.rawElementCount
            let size = array.rawByteCount
            raw = { destination in array.withRawBytes { destination.copyMemory(from: $0.baseAddress!, byteCount: size) } }
            return DirectEncoding(header: Self.varint(count), payloadSize: size, writePayload: size == 0 ? { _ in } : raw)
        }
        if let data = value as? Data {
            if value is any EncodableOptional { return nil }
            return DirectEncoding(header: Self.varint(data.count), payloadSize: data.count) { destination in
                data.withUnsafeBytes { bytes in
                    if bytes.count > 0 { destination.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
                }
            }
        }
        return nil
    }

    @usableFromInline
    static func varint(_ value: Int) -> [UInt8] {
        let sink = ByteSink()
        sink.appendVarint(value)
        return sink.bytes
    }
}

/// A value's encoding as a header and one block of bytes (see ``BinaryEncoder/directEncoding(_:)``).
public struct DirectEncoding {
    let header: [UInt8]
    let payloadSize: Int
    let writePayload: (UnsafeMutableRawPointer) -> Void

    @usableFromInline
    init(header: [UInt8], payloadSize: Int, writePayload: @escaping (UnsafeMutableRawPointer) -> Void) {
        self.header = header
        self.payloadSize = payloadSize
        self.writePayload = writePayload
    }

    /// The bytes the encoding takes.
    public var size: Int { header.count + payloadSize }

    /// Writes the encoding to `destination`, which must hold ``size`` bytes.
    public func write(to destination: UnsafeMutableRawPointer) {
        header.withUnsafeBytes { destination.copyMemory(from: $0.baseAddress!, byteCount: header.count) }
        writePayload(destination + header.count)
    }
}

/// The growing output and the positions of length fields still open around the current write.
@usableFromInline
final class ByteSink {
    @usableFromInline var bytes: [UInt8] = []

    @usableFromInline init() { bytes.reserveCapacity(64) }

    @inline(__always)
    func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inlinable
    func appendVarint(_ value: Int) {
        var v = UInt64(value)
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    @usableFromInline
    func appendString(_ string: String) {
        var string = string
        string.withUTF8 { utf8 in
            appendVarint(utf8.count)
            bytes.append(contentsOf: utf8)
        }
    }

    /// Reserves a 4-byte little-endian field; returns its position.
    func reserveUInt32() -> Int {
        let position = bytes.count
        bytes.append(contentsOf: [0, 0, 0, 0])
        return position
    }

    @usableFromInline
    func patchUInt32(at position: Int, _ value: Int) {
        let v = UInt32(truncatingIfNeeded: value)
        bytes[position] = UInt8(truncatingIfNeeded: v)
        bytes[position + 1] = UInt8(truncatingIfNeeded: v >> 8)
        bytes[position + 2] = UInt8(truncatingIfNeeded: v >> 16)
        bytes[position + 3] = UInt8(truncatingIfNeeded: v >> 24)
    }

    /// Sets every open keyed-entry length (`slots`) to reach the end of what is written so far.
    @inlinable
    func patch(_ slots: [Int]) {
        for slot in slots { patchUInt32(at: slot, bytes.count - slot - 4) }
    }

    /// Encodes any value, taking the one-copy path for trivial arrays and byte buffers.
    @inlinable
    func encodeValue<T: Encodable>(_ value: T, codingPath: [any CodingKey], slots: [Int]) throws {
        if let optional = value as? any EncodableOptional {
            if let wrapped = optional.wrappedEncodable {
                bytes.append(WireFormat.present)
                try encodeValue(wrapped, codingPath: codingPath, slots: slots)
                return
            }
            bytes.append(WireFormat.absent)
        } else if let array = value as? any TrivialArray {
            array.writeRaw(into: self)
        } else if let data = value as? Data {
            appendVarint(data.count)
            bytes.append(contentsOf: data)
        } else if let string = value as? String {
            appendString(string)
        } else {
            try value.encode(to: _BinaryEncoder(sink: self, codingPath: codingPath, slots: slots))
        }
        patch(slots)
    }
}

/// Optionals carry a presence byte wherever they appear (a bare nil and a value whose first byte is 0
/// must not look alike).
@usableFromInline
protocol EncodableOptional {
    var wrappedEncodable: (any Encodable)? { get }
}

extension Optional: EncodableOptional where Wrapped: Encodable {
    @usableFromInline var wrappedEncodable: (any Encodable)? { self }
}

/// Copies `source` into a large allocation not touched yet. Fresh memory costs a page fault per 4 KiB
/// page, which made decoding an 800 MB array run at 1.0-1.6 GB/s where memcpy between resident
/// buffers runs at 10-12 (this machine). So: transparent huge pages asked for (THP's `madvise` mode,
/// one fault per 2 MiB; 5.2 GB/s), and above 64 MiB the copy split over the cores, whose faults then
/// overlap (two cores: 8-9 GB/s; measured in C first, docs/benchmarks.md).
@usableFromInline
func copyIntoFreshMemory(_ destination: UnsafeMutableRawBufferPointer, from source: UnsafeRawBufferPointer) {
    let count = min(destination.count, source.count)
    guard count > 0, let target = destination.baseAddress, let origin = source.baseAddress else { return }
    let hugePage = 2 << 20
    #if os(Linux)
    if count >= 4 * hugePage {
        let start = (Int(bitPattern: target) + hugePage - 1) & ~(hugePage - 1)
        let end = (Int(bitPattern: target) + count) & ~(hugePage - 1)
        if end > start, let aligned = UnsafeMutableRawPointer(bitPattern: start) { _ = madvise(aligned, end - start, MADV_HUGEPAGE) }
    }
    #endif
    let parts = count >= 32 * hugePage ? min(4, max(1, ProcessInfo.processInfo.activeProcessorCount)) : 1
    guard parts > 1 else { target.copyMemory(from: origin, byteCount: count); return }
    // Each part a whole number of huge pages, so no two threads fault on one page.
    let part = (count / parts + hugePage - 1) & ~(hugePage - 1)
    let destinationAddress = UInt(bitPattern: target), sourceAddress = UInt(bitPattern: origin)
    DispatchQueue.concurrentPerform(iterations: parts) { index in
        let offset = index * part
        guard offset < count else { return }
        UnsafeMutableRawPointer(bitPattern: destinationAddress + UInt(offset))!
            .copyMemory(from: UnsafeRawPointer(bitPattern: sourceAddress + UInt(offset))!, byteCount: min(part, count - offset))
    }
}

/// Arrays whose elements are plain numbers: written and read as one block of bytes.
@usableFromInline
protocol TrivialArray {
    var rawElementCount: Int { get }
    var rawByteCount: Int { get }
    func withRawBytes(_ body: (UnsafeRawBufferPointer) -> Void)
    func writeRaw(into sink: ByteSink)
    static func readRaw(from reader: inout ByteReader) throws(SerializationError) -> Self
}

/// Numbers whose in-memory bytes are their little-endian wire form on every platform Ray runs on.
public protocol _TrivialScalar: BitwiseCopyable {}
extension UInt8: _TrivialScalar {}
extension Int8: _TrivialScalar {}
extension UInt16: _TrivialScalar {}
extension Int16: _TrivialScalar {}
extension UInt32: _TrivialScalar {}
extension Int32: _TrivialScalar {}
extension UInt64: _TrivialScalar {}
extension Int64: _TrivialScalar {}
extension Int: _TrivialScalar {}
extension UInt: _TrivialScalar {}
extension Float: _TrivialScalar {}
extension Double: _TrivialScalar {}

#if _endian(big)
#error("swift-ray's wire format copies numbers as little-endian bytes")
#endif

extension Array: TrivialArray where Element: _TrivialScalar {
    @usableFromInline var rawElementCount: Int { count }
    @usableFromInline var rawByteCount: Int { count * MemoryLayout<Element>.stride }
    @usableFromInline func withRawBytes(_ body: (UnsafeRawBufferPointer) -> Void) { withUnsafeBytes(body) }

    @usableFromInline func writeRaw(into sink: ByteSink) {
        sink.appendVarint(count)
        withUnsafeBytes { sink.bytes.append(contentsOf: $0) }
    }

    @usableFromInline static func readRaw(from reader: inout ByteReader) throws(SerializationError) -> [Element] {
        let count = try reader.readVarint()
        let size = MemoryLayout<Element>.stride
        guard count <= reader.remaining / Swift.max(size, 1) else {
            throw SerializationError(.truncated, "an array of \(count) \(Element.self) runs past the end of the data")
        }
        let raw = try reader.readBytes(count * size)
        return [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 {
                copyIntoFreshMemory(UnsafeMutableRawBufferPointer(buffer), from: raw)
            }
            initialized = count
        }
    }
}

@usableFromInline
struct _BinaryEncoder: Encoder {
    let sink: ByteSink
    @usableFromInline let codingPath: [any CodingKey]
    let slots: [Int]

    @usableFromInline
    init(sink: ByteSink, codingPath: [any CodingKey], slots: [Int]) {
        self.sink = sink
        self.codingPath = codingPath
        self.slots = slots
    }

    @usableFromInline var userInfo: [CodingUserInfoKey: Any] { [:] }

    @usableFromInline func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(KeyedContainer<Key>(sink: sink, codingPath: codingPath, slots: slots))
    }

    @usableFromInline func unkeyedContainer() -> any UnkeyedEncodingContainer {
        UnkeyedContainer(sink: sink, codingPath: codingPath, slots: slots)
    }

    @usableFromInline func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleValueContainer(sink: sink, codingPath: codingPath, slots: slots)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let sink: ByteSink
    let codingPath: [any CodingKey]
    let slots: [Int]
    private let countPosition: Int
    private var count = 0

    init(sink: ByteSink, codingPath: [any CodingKey], slots: [Int]) {
        self.sink = sink
        self.codingPath = codingPath
        self.slots = slots
        self.countPosition = sink.reserveUInt32()
        sink.patch(slots)
    }

    /// Writes the entry header; returns the slots that must cover its value.
    private mutating func beginEntry(_ key: Key) -> [Int] {
        count += 1
        sink.patchUInt32(at: countPosition, count)
        sink.appendString(key.stringValue)
        return slots + [sink.reserveUInt32()]
    }

    mutating func encodeNil(forKey key: Key) throws {
        let entry = beginEntry(key)
        sink.bytes.append(WireFormat.absent)
        sink.patch(entry)
    }

    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        let entry = beginEntry(key)
        if let value {
            sink.bytes.append(WireFormat.present)
            try sink.encodeValue(value, codingPath: codingPath + [key], slots: entry)
        } else {
            sink.bytes.append(WireFormat.absent)
            sink.patch(entry)
        }
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws { try encodeScalar(value ? 1 as UInt8 : 0, key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try encodeScalar(Int64(value), key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try encodeScalar(value, key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try encodeScalar(value, key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try encodeScalar(value.bitPattern, key) }
    mutating func encode(_ value: String, forKey key: Key) throws {
        let entry = beginEntry(key)
        sink.appendString(value)
        sink.patch(entry)
    }

    private mutating func encodeScalar<T: FixedWidthInteger>(_ value: T, _ key: Key) throws {
        let entry = beginEntry(key)
        sink.append(value)
        sink.patch(entry)
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        let entry = beginEntry(key)
        try sink.encodeValue(value, codingPath: codingPath + [key], slots: entry)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let entry = beginEntry(key)
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(sink: sink, codingPath: codingPath + [key], slots: entry))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let entry = beginEntry(key)
        return UnkeyedContainer(sink: sink, codingPath: codingPath + [key], slots: entry)
    }

    mutating func superEncoder() -> any Encoder {
        let entry = beginEntry(Key(stringValue: "super")!)
        return _BinaryEncoder(sink: sink, codingPath: codingPath, slots: entry)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let entry = beginEntry(key)
        return _BinaryEncoder(sink: sink, codingPath: codingPath + [key], slots: entry)
    }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let sink: ByteSink
    let codingPath: [any CodingKey]
    let slots: [Int]
    private let countPosition: Int
    private(set) var count = 0

    init(sink: ByteSink, codingPath: [any CodingKey], slots: [Int]) {
        self.sink = sink
        self.codingPath = codingPath
        self.slots = slots
        self.countPosition = sink.reserveUInt32()
        sink.patch(slots)
    }

    private mutating func next() {
        count += 1
        sink.patchUInt32(at: countPosition, count)
    }

    mutating func encodeNil() throws {
        next()
        sink.bytes.append(WireFormat.absent)
        sink.patch(slots)
    }

    mutating func encode(_ value: Bool) throws { next(); sink.bytes.append(value ? 1 : 0); sink.patch(slots) }
    mutating func encode(_ value: Int) throws { next(); sink.append(Int64(value)); sink.patch(slots) }
    mutating func encode(_ value: Int64) throws { next(); sink.append(value); sink.patch(slots) }
    mutating func encode(_ value: Double) throws { next(); sink.append(value.bitPattern); sink.patch(slots) }
    mutating func encode(_ value: String) throws { next(); sink.appendString(value); sink.patch(slots) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        next()
        try sink.encodeValue(value, codingPath: codingPath + [IndexKey(count - 1)], slots: slots)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type)
        -> KeyedEncodingContainer<NestedKey>
    {
        next()
        return KeyedEncodingContainer(
            KeyedContainer<NestedKey>(sink: sink, codingPath: codingPath + [IndexKey(count - 1)], slots: slots))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        next()
        return UnkeyedContainer(sink: sink, codingPath: codingPath + [IndexKey(count - 1)], slots: slots)
    }

    mutating func superEncoder() -> any Encoder {
        next()
        return _BinaryEncoder(sink: sink, codingPath: codingPath + [IndexKey(count - 1)], slots: slots)
    }
}

private struct SingleValueContainer: SingleValueEncodingContainer {
    let sink: ByteSink
    let codingPath: [any CodingKey]
    let slots: [Int]

    mutating func encodeNil() throws { sink.bytes.append(WireFormat.absent); sink.patch(slots) }
    mutating func encode(_ value: Bool) throws { sink.bytes.append(value ? 1 : 0); sink.patch(slots) }
    mutating func encode(_ value: String) throws { sink.appendString(value); sink.patch(slots) }
    mutating func encode(_ value: Double) throws { sink.append(value.bitPattern); sink.patch(slots) }
    mutating func encode(_ value: Float) throws { sink.append(value.bitPattern); sink.patch(slots) }
    mutating func encode(_ value: Int) throws { sink.append(Int64(value)); sink.patch(slots) }
    mutating func encode(_ value: Int8) throws { sink.append(value); sink.patch(slots) }
    mutating func encode(_ value: Int16) throws { sink.append(value); sink.patch(slots) }
    mutating func encode(_ value: Int32) throws { sink.append(value); sink.patch(slots) }
    mutating func encode(_ value: Int64) throws { sink.append(value); sink.patch(slots) }
    mutating func encode(_ value: UInt) throws { sink.append(UInt64(value)); sink.patch(slots) }
    mutating func encode(_ value: UInt8) throws { sink.append(value); sink.patch(slots) }
    mutating func encode(_ value: UInt16) throws { sink.append(value); sink.patch(slots) }
    mutating func encode(_ value: UInt32) throws { sink.append(value); sink.patch(slots) }
    mutating func encode(_ value: UInt64) throws { sink.append(value); sink.patch(slots) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        try sink.encodeValue(value, codingPath: codingPath, slots: slots)
    }
}
