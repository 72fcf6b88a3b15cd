import Synchronization

/// What distinguishes one kind of Ray ID from another: its size in bytes and its name.
public protocol IDKind: Sendable {
    /// Bytes in the binary form, as Ray lays them out.
    static var size: Int { get }
    static var name: String { get }
}

/// A Ray ID: a fixed number of bytes (at most 32), stored inline, compared and hashed by value. The
/// binary form is the one Ray uses (docs: "Ray ID Specification"), so IDs compose: an ObjectID
/// starts with the TaskID that made it, a TaskID ends with its ActorID, an ActorID with its JobID.
public struct RayID<Kind: IDKind>: Hashable, Sendable, Comparable, CustomStringConvertible {
    // Little-endian words of the binary form; bytes past Kind.size are zero.
    @usableFromInline var w0: UInt64 = 0
    @usableFromInline var w1: UInt64 = 0
    @usableFromInline var w2: UInt64 = 0
    @usableFromInline var w3: UInt64 = 0

    /// The all-zero ID, Ray's "nil" ID.
    public static var `nil`: RayID { RayID() }

    public init() {}

    /// An ID from its binary form; throws if the length is not `Kind.size`.
    @inlinable
    public init<Bytes: Collection>(bytes: Bytes) throws(IDError) where Bytes.Element == UInt8 {
        guard bytes.count == Kind.size else {
            throw IDError(message: "\(Kind.name) needs \(Kind.size) bytes, got \(bytes.count)")
        }
        self.init(unchecked: bytes)
    }

    @inlinable
    init<Bytes: Collection>(unchecked bytes: Bytes) where Bytes.Element == UInt8 {
        // Contiguous bytes ([UInt8], Data, slices of them): one copy into the words.
        let copied: Bool? = bytes.withContiguousStorageIfAvailable { buffer in
            withUnsafeMutableBytes(of: &self) { words in
                words.copyMemory(from: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer).prefix(32)))
            }
            return true
        }
        if copied == nil {
            for (i, byte) in bytes.enumerated() { setByte(i, byte) }
        }
    }

    /// An ID from its hex form (`hex`).
    public init(hex: String) throws(IDError) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == Kind.size * 2 else {
            throw IDError(message: "\(Kind.name) needs \(Kind.size * 2) hex digits, got \(utf8.count)")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Kind.size)
        for i in stride(from: 0, to: utf8.count, by: 2) {
            guard let high = Self.hexValue(utf8[i]), let low = Self.hexValue(utf8[i + 1]) else {
                throw IDError(message: "'\(hex)' is not hex")
            }
            bytes.append(high << 4 | low)
        }
        self.init(unchecked: bytes)
    }

    /// A random ID: unique within this process, and across processes with overwhelming probability
    /// (a per-process seed from the system's random source, then a counter through a mixer, so making
    /// one costs no system call).
    public static func random() -> RayID {
        var id = RayID()
        id.w0 = IDRandomness.next()
        if Kind.size > 8 { id.w1 = IDRandomness.next() }
        if Kind.size > 16 { id.w2 = IDRandomness.next() }
        if Kind.size > 24 { id.w3 = IDRandomness.next() }
        id.clearPastSize()
        return id
    }

    /// Zeroes the bytes past `Kind.size` (they must stay zero for equality and hashing).
    mutating func clearPastSize() {
        for i in Kind.size..<32 { setByte(i, 0) }
    }

    public var isNil: Bool { w0 == 0 && w1 == 0 && w2 == 0 && w3 == 0 }

    /// The binary form, `Kind.size` bytes.
    @inlinable
    public var bytes: [UInt8] {
        withUnsafeBytes(of: self) { Array($0.prefix(Kind.size)) }
    }

    /// Lowercase hex of the binary form, as Ray prints IDs.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(Kind.size * 2)
        for i in 0..<Kind.size {
            let b = byte(i)
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { hex }

    // Written out and inlinable (the synthesized ones are not): every object-store and reference-table
    // lookup in the other modules hashes and compares IDs, which a plain release build would otherwise
    // do through unspecialized generic calls.
    @inlinable
    public static func == (lhs: RayID, rhs: RayID) -> Bool {
        lhs.w0 == rhs.w0 && lhs.w1 == rhs.w1 && lhs.w2 == rhs.w2 && lhs.w3 == rhs.w3
    }

    @inlinable
    public func hash(into hasher: inout Hasher) {
        hasher.combine(w0)
        hasher.combine(w1)
        hasher.combine(w2)
        hasher.combine(w3)
    }

    public static func < (lhs: RayID, rhs: RayID) -> Bool { lhs.bytes.lexicographicallyPrecedes(rhs.bytes) }

    @inline(__always)
    func byte(_ i: Int) -> UInt8 {
        let word: UInt64
        switch i >> 3 {
        case 0: word = w0
        case 1: word = w1
        case 2: word = w2
        default: word = w3
        }
        return UInt8(truncatingIfNeeded: word >> (UInt64(i & 7) * 8))
    }

    @inline(__always) @usableFromInline
    mutating func setByte(_ i: Int, _ value: UInt8) {
        let shift = UInt64(i & 7) * 8
        let mask = ~(UInt64(0xFF) << shift)
        let bits = UInt64(value) << shift
        switch i >> 3 {
        case 0: w0 = w0 & mask | bits
        case 1: w1 = w1 & mask | bits
        case 2: w2 = w2 & mask | bits
        default: w3 = w3 & mask | bits
        }
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

extension RayID: Codable {
    public init(from decoder: any Decoder) throws {
        let bytes = try decoder.singleValueContainer().decode([UInt8].self)
        try self.init(bytes: bytes)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(bytes)
    }
}

/// An ID of the wrong length or form.
public struct IDError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    public init(message: String) { self.message = message }
}

/// The source of ``RayID/random()``: splitmix64 over a counter that starts at a random seed. Distinct
/// counter values give distinct outputs (splitmix64's finalizer is a bijection).
enum IDRandomness {
    private static let seed: UInt64 = {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }()
    private static let counter = Atomic<UInt64>(0)

    static func next() -> UInt64 {
        var z = seed &+ counter.add(1, ordering: .relaxed).newValue &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
