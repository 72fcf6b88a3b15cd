#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization

/// Decodes values that ``BinaryEncoder`` encoded. Malformed or truncated input throws a
/// ``SerializationError``; it never traps.
///
/// The generic entry points are `@inlinable`, as ``BinaryEncoder``'s are: a caller's module
/// specializes them for its types.
public struct BinaryDecoder: Sendable {
    @inlinable public init() {}

    private static let sharedUserInfo = Mutex<[CodingUserInfoKey: any Sendable]>([:])

    /// What every decoder's `userInfo` holds: process-wide context a type's `init(from:)` may need
    /// (Ray puts its actor system there, so actor handles inside values decode).
    public static var userInfo: [CodingUserInfoKey: any Sendable] {
        get { sharedUserInfo.withLock { $0 } }
        set { sharedUserInfo.withLock { $0 = newValue } }
    }

    @inlinable
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws(SerializationError) -> T {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(SerializationError) -> T in try decode(type, from: buffer) }
        }
        return try result.get()
    }

    /// Decodes from memory that must stay valid and unchanged during the call (a shared-memory object,
    /// a received message).
    @inlinable
    public func decode<T: Decodable>(_ type: T.Type, from buffer: UnsafeRawBufferPointer) throws(SerializationError) -> T {
        var reader = ByteReader(buffer)
        do {
            let value = try reader.decodeValue(T.self, codingPath: [])
            guard reader.remaining == 0 else {
                throw SerializationError(.invalidValue, "\(reader.remaining) bytes left over after decoding \(T.self)")
            }
            return value
        } catch let error as SerializationError {
            throw error
        } catch let error as DecodingError {
            throw SerializationError(.typeMismatch, "\(T.self) failed to decode: \(error)")
        } catch {
            throw SerializationError(.invalidValue, "\(T.self) failed to decode: \(error)")
        }
    }
}

/// A cursor over borrowed bytes.
@usableFromInline
struct ByteReader {
    @usableFromInline let base: UnsafeRawBufferPointer
    @usableFromInline var offset: Int
    @usableFromInline let end: Int

    @usableFromInline
    init(_ buffer: UnsafeRawBufferPointer, offset: Int = 0, end: Int? = nil) {
        self.base = buffer
        self.offset = offset
        self.end = end ?? buffer.count
    }

    @inlinable var remaining: Int { end - offset }

    @usableFromInline
    mutating func readBytes(_ count: Int) throws(SerializationError) -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else {
            throw SerializationError(.truncated, "needed \(count) bytes, \(remaining) left")
        }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: base[offset..<offset + count])
    }

    @usableFromInline
    mutating func readByte() throws(SerializationError) -> UInt8 {
        guard remaining >= 1 else { throw SerializationError(.truncated, "needed 1 byte, none left") }
        defer { offset += 1 }
        return base[offset]
    }

    mutating func read<T: FixedWidthInteger>(_ type: T.Type) throws(SerializationError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else {
            throw SerializationError(.truncated, "needed \(size) bytes for \(T.self), \(remaining) left")
        }
        defer { offset += size }
        return T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    @usableFromInline
    mutating func readVarint() throws(SerializationError) -> Int {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try readByte()
            if shift >= 63, byte > 1 { throw SerializationError(.invalidValue, "a length does not fit 64 bits") }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { break }
            shift += 7
        }
        guard result <= UInt64(Int.max) else { throw SerializationError(.invalidValue, "a length does not fit Int") }
        return Int(result)
    }

    @usableFromInline
    mutating func readString() throws(SerializationError) -> String {
        let count = try readVarint()
        let raw = try readBytes(count)
        guard let string = String(validating: raw, as: UTF8.self) else {
            throw SerializationError(.invalidValue, "a string is not valid UTF-8")
        }
        return string
    }

    @inlinable
    mutating func decodeValue<T: Decodable>(_ type: T.Type, codingPath: [any CodingKey]) throws -> T {
        if let optional = T.self as? any DecodableOptional.Type {
            let flag = try readByte()
            switch flag {
            case WireFormat.absent: return optional.absentValue as! T
            case WireFormat.present: return try optional.decodeWrapped(from: &self, codingPath: codingPath) as! T
            default: throw SerializationError(.invalidValue, "bad optional marker \(flag)", codingPath: codingPath)
            }
        }
        if let array = T.self as? any TrivialArray.Type {
            return try array.readRaw(from: &self) as! T
        }
        if T.self == Data.self {
            let count = try readVarint()
            return Data(try readBytes(count)) as! T
        }
        if T.self == String.self {
            return try readString() as! T
        }
        let decoder = _BinaryDecoder(reader: ReaderBox(self), codingPath: codingPath)
        let value = try T(from: decoder)
        self.offset = decoder.reader.reader.offset
        return value
    }
}

@usableFromInline
protocol DecodableOptional {
    static var absentValue: Self { get }
    static func decodeWrapped(from reader: inout ByteReader, codingPath: [any CodingKey]) throws -> Self
}

extension Optional: DecodableOptional where Wrapped: Decodable {
    @usableFromInline static var absentValue: Optional<Wrapped> { nil }
    @usableFromInline static func decodeWrapped(from reader: inout ByteReader, codingPath: [any CodingKey]) throws -> Optional<Wrapped> {
        try reader.decodeValue(Wrapped.self, codingPath: codingPath)
    }
}

/// A reader shared by a decoder and its containers, which advance it as they read.
@usableFromInline
final class ReaderBox {
    @usableFromInline var reader: ByteReader
    @usableFromInline init(_ reader: ByteReader) { self.reader = reader }
}

@usableFromInline
struct _BinaryDecoder: Decoder {
    @usableFromInline let reader: ReaderBox
    @usableFromInline let codingPath: [any CodingKey]

    @usableFromInline
    init(reader: ReaderBox, codingPath: [any CodingKey]) {
        self.reader = reader
        self.codingPath = codingPath
    }
    @usableFromInline var userInfo: [CodingUserInfoKey: Any] { BinaryDecoder.userInfo }

    @usableFromInline func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(try KeyedContainer<Key>(reader: reader, codingPath: codingPath))
    }

    @usableFromInline func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try UnkeyedContainer(reader: reader, codingPath: codingPath)
    }

    @usableFromInline func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleValueContainer(reader: reader, codingPath: codingPath)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let reader: ReaderBox
    let codingPath: [any CodingKey]
    private let entries: [(key: String, start: Int, end: Int)]
    /// Where the next lookup starts: keys are usually asked for in the order they were written.
    private let hint = Hint()

    init(reader: ReaderBox, codingPath: [any CodingKey]) throws {
        self.reader = reader
        self.codingPath = codingPath
        let count = Int(try reader.reader.read(UInt32.self))
        guard count <= reader.reader.remaining / 5 else {
            throw SerializationError(.truncated, "\(count) keyed entries cannot fit the data left", codingPath: codingPath)
        }
        var entries: [(key: String, start: Int, end: Int)] = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            let key = try reader.reader.readString()
            let length = Int(try reader.reader.read(UInt32.self))
            let start = reader.reader.offset
            _ = try reader.reader.readBytes(length)
            entries.append((key, start, start + length))
        }
        self.entries = entries
    }

    var allKeys: [Key] { entries.compactMap { Key(stringValue: $0.key) } }

    func contains(_ key: Key) -> Bool { find(key) != nil }

    private func find(_ key: Key) -> (start: Int, end: Int)? {
        let name = key.stringValue
        if hint.index < entries.count, entries[hint.index].key == name { return (entries[hint.index].start, entries[hint.index].end) }
        for entry in entries where entry.key == name { return (entry.start, entry.end) }
        return nil
    }

    /// A reader over the entry's value, or a keyNotFound error.
    private func entryReader(_ key: Key) throws -> ByteReader {
        let name = key.stringValue
        var index: Int?
        if hint.index < entries.count, entries[hint.index].key == name {
            index = hint.index
        } else {
            index = entries.firstIndex { $0.key == name }
        }
        guard let index else {
            throw SerializationError(.keyNotFound, "no value for key '\(name)'", codingPath: codingPath)
        }
        hint.index = index + 1
        return ByteReader(reader.reader.base, offset: entries[index].start, end: entries[index].end)
    }

    private func decodeEntry<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T {
        var sub = try entryReader(key)
        let value = try sub.decodeValue(T.self, codingPath: codingPath + [key])
        guard sub.remaining == 0 else {
            throw SerializationError(.typeMismatch, "the value for '\(key.stringValue)' is not a \(T.self)",
                                     codingPath: codingPath + [key])
        }
        return value
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        var sub = try entryReader(key)
        guard sub.remaining == 1 else { return false }
        return try sub.readByte() == WireFormat.absent
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard contains(key) else { return nil }
        var sub = try entryReader(key)
        let flag = try sub.readByte()
        if flag == WireFormat.absent { return nil }
        guard flag == WireFormat.present else {
            throw SerializationError(.invalidValue, "bad optional marker \(flag)", codingPath: codingPath + [key])
        }
        return try sub.decodeValue(T.self, codingPath: codingPath + [key])
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool {
        var sub = try entryReader(key)
        return try sub.readByte() != 0
    }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int {
        var sub = try entryReader(key)
        return Int(try sub.read(Int64.self))
    }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 {
        var sub = try entryReader(key)
        return try sub.read(Int64.self)
    }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 {
        var sub = try entryReader(key)
        return try sub.read(UInt64.self)
    }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double {
        var sub = try entryReader(key)
        return Double(bitPattern: try sub.read(UInt64.self))
    }
    func decode(_ type: String.Type, forKey key: Key) throws -> String {
        var sub = try entryReader(key)
        return try sub.readString()
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decodeEntry(type, key)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let sub = try entryReader(key)
        return KeyedDecodingContainer(try KeyedContainer<NestedKey>(reader: ReaderBox(sub), codingPath: codingPath + [key]))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let sub = try entryReader(key)
        return try UnkeyedContainer(reader: ReaderBox(sub), codingPath: codingPath + [key])
    }

    func superDecoder() throws -> any Decoder {
        let sub = try entryReader(Key(stringValue: "super")!)
        return _BinaryDecoder(reader: ReaderBox(sub), codingPath: codingPath)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        let sub = try entryReader(key)
        return _BinaryDecoder(reader: ReaderBox(sub), codingPath: codingPath + [key])
    }
}

private final class Hint {
    var index = 0
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let reader: ReaderBox
    let codingPath: [any CodingKey]
    let count: Int?
    private(set) var currentIndex = 0

    init(reader: ReaderBox, codingPath: [any CodingKey]) throws {
        self.reader = reader
        self.codingPath = codingPath
        let count = Int(try reader.reader.read(UInt32.self))
        guard count <= reader.reader.remaining else {
            throw SerializationError(.truncated, "\(count) elements cannot fit the data left", codingPath: codingPath)
        }
        self.count = count
    }

    var isAtEnd: Bool { currentIndex >= (count ?? 0) }

    private mutating func advance() throws {
        guard !isAtEnd else {
            throw SerializationError(.truncated, "read past the last of \(count ?? 0) elements",
                                     codingPath: codingPath + [IndexKey(currentIndex)])
        }
        currentIndex += 1
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { return false }
        let reader = self.reader.reader
        guard reader.remaining >= 1, reader.base[reader.offset] == WireFormat.absent else { return false }
        self.reader.reader.offset += 1
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try advance(); return try reader.reader.readByte() != 0 }
    mutating func decode(_ type: Int.Type) throws -> Int { try advance(); return Int(try reader.reader.read(Int64.self)) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try advance(); return try reader.reader.read(Int64.self) }
    mutating func decode(_ type: Double.Type) throws -> Double {
        try advance()
        return Double(bitPattern: try reader.reader.read(UInt64.self))
    }
    mutating func decode(_ type: String.Type) throws -> String { try advance(); return try reader.reader.readString() }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try advance()
        return try reader.reader.decodeValue(T.self, codingPath: codingPath + [IndexKey(currentIndex - 1)])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try advance()
        return KeyedDecodingContainer(
            try KeyedContainer<NestedKey>(reader: reader, codingPath: codingPath + [IndexKey(currentIndex - 1)]))
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try advance()
        return try UnkeyedContainer(reader: reader, codingPath: codingPath + [IndexKey(currentIndex - 1)])
    }

    mutating func superDecoder() throws -> any Decoder {
        try advance()
        return _BinaryDecoder(reader: reader, codingPath: codingPath + [IndexKey(currentIndex - 1)])
    }
}

private struct SingleValueContainer: SingleValueDecodingContainer {
    let reader: ReaderBox
    let codingPath: [any CodingKey]

    func decodeNil() -> Bool {
        let r = reader.reader
        guard r.remaining == 1, r.base[r.offset] == WireFormat.absent else { return false }
        reader.reader.offset += 1
        return true
    }

    func decode(_ type: Bool.Type) throws -> Bool { try reader.reader.readByte() != 0 }
    func decode(_ type: String.Type) throws -> String { try reader.reader.readString() }
    func decode(_ type: Double.Type) throws -> Double { Double(bitPattern: try reader.reader.read(UInt64.self)) }
    func decode(_ type: Float.Type) throws -> Float { Float(bitPattern: try reader.reader.read(UInt32.self)) }
    func decode(_ type: Int.Type) throws -> Int { Int(try reader.reader.read(Int64.self)) }
    func decode(_ type: Int8.Type) throws -> Int8 { try reader.reader.read(Int8.self) }
    func decode(_ type: Int16.Type) throws -> Int16 { try reader.reader.read(Int16.self) }
    func decode(_ type: Int32.Type) throws -> Int32 { try reader.reader.read(Int32.self) }
    func decode(_ type: Int64.Type) throws -> Int64 { try reader.reader.read(Int64.self) }
    func decode(_ type: UInt.Type) throws -> UInt { UInt(try reader.reader.read(UInt64.self)) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try reader.reader.read(UInt8.self) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try reader.reader.read(UInt16.self) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try reader.reader.read(UInt32.self) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try reader.reader.read(UInt64.self) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try reader.reader.decodeValue(T.self, codingPath: codingPath)
    }
}
