/// gRPC metadata: an ordered list of key-value pairs. Keys are lowercase; keys ending in `-bin` hold
/// arbitrary bytes, the others printable ASCII text.
public struct Metadata: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public struct Entry: Sendable, Hashable {
        public var key: String
        public var value: [UInt8]
        /// The value as text (lossy for binary values).
        public var stringValue: String { String(decoding: value, as: UTF8.self) }
    }

    public private(set) var entries: [Entry] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, String)...) {
        for (key, value) in elements { add(key, value) }
    }

    /// Appends a text value. The key is lowercased.
    public mutating func add(_ key: String, _ value: String) {
        entries.append(Entry(key: key.lowercased(), value: Array(value.utf8)))
    }

    /// Appends a binary value; the key should end in `-bin`.
    public mutating func add(_ key: String, bytes: [UInt8]) {
        entries.append(Entry(key: key.lowercased(), value: bytes))
    }

    /// The first text value for `key`.
    public subscript(key: String) -> String? {
        let key = key.lowercased()
        return entries.first { $0.key == key }?.stringValue
    }

    /// Every value for `key`, as bytes.
    public func values(forKey key: String) -> [[UInt8]] {
        let key = key.lowercased()
        return entries.filter { $0.key == key }.map(\.value)
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    public func makeIterator() -> IndexingIterator<[Entry]> { entries.makeIterator() }

    /// Checks what gRPC would reject: keys of `[0-9a-z_.-]` not starting with `grpc-`, and printable
    /// ASCII values for keys that do not end in `-bin`.
    public func validate() throws(RPCError) {
        for entry in entries {
            let keyOK = !entry.key.isEmpty && !entry.key.hasPrefix("grpc-") && entry.key.utf8.allSatisfy { c in
                (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x5F || c == 0x2E
            }
            guard keyOK else {
                throw RPCError(code: .invalidArgument, message: "invalid metadata key '\(entry.key)'")
            }
            if !entry.key.hasSuffix("-bin"), !entry.value.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E }) {
                throw RPCError(
                    code: .invalidArgument,
                    message: "metadata value for '\(entry.key)' must be printable ASCII (use a -bin key for bytes)")
            }
        }
    }
}
