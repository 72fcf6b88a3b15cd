/// The binary format of ``BinaryEncoder`` and ``BinaryDecoder``, for values that cross processes
/// (task arguments and results, actor calls, objects). Both sides run the same binary, so the format
/// carries no type names; it carries keys, so decoders that look keys up by name (including the
/// synthesized `Codable` of enums with associated values) work.
///
/// - Integers and floats: fixed width, little-endian. `Int`/`UInt` as 64 bits. Bool: one byte.
/// - String: a varint byte count, then UTF-8.
/// - nil: one byte 0 (absent) before an optional value, 1 (present) before its value.
/// - Keyed container: a varint entry count, then per entry a key (string), a 4-byte little-endian
///   value length, and the value (so a decoder can look entries up in any order and skip unknown ones).
/// - Unkeyed container: a varint element count, then the elements.
/// - Contiguous arrays of trivial numbers (`[UInt8]`, `[Int8]`, … `[Int]`, `[Float]`, `[Double]`) and
///   `Data`-like byte buffers: a varint element count, then the elements' bytes in one copy.
@usableFromInline
enum WireFormat {
    @inlinable static var absent: UInt8 { 0 }
    @inlinable static var present: UInt8 { 1 }
}

/// A value that cannot be encoded or decoded, with where in the value it happened.
public struct SerializationError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case truncated, typeMismatch, keyNotFound, invalidValue, unsupported }
    public var kind: Kind
    public var message: String
    public var codingPath: String

    public init(_ kind: Kind, _ message: String, codingPath: [any CodingKey] = []) {
        self.kind = kind
        self.message = message
        self.codingPath = codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }

    public var description: String {
        codingPath.isEmpty ? message : "\(message) (at \(codingPath))"
    }
}

/// The coding key of an unkeyed container's element, for coding paths in errors.
struct IndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { String(intValue ?? 0) }
    init(_ index: Int) { intValue = index }
    init?(stringValue: String) { intValue = Int(stringValue) }
    init?(intValue: Int) { self.intValue = intValue }
}
