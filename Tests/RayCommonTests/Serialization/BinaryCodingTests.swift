import Foundation
import RayCommon
import Testing

private struct Point: Codable, Equatable { var x: Double; var y: Double }

private struct Record: Codable, Equatable {
    var id: Int
    var name: String
    var tags: [String]
    var score: Float?
    var nested: [Point]
    var lookup: [String: Int]
    var flag: Bool
    var small: Int8
    var big: UInt64
    var nothing: String?
}

private enum Command: Codable, Equatable {
    case stop
    case move(Point, speed: Double)
    case say(String)
}

private final class Base: Codable {
    var a: Int
    init(a: Int) { self.a = a }
}

/// Decodes its keys in the reverse order of encoding, as a hand-written conformance may.
private struct Reversed: Codable, Equatable {
    var first: Int
    var second: String
    enum CodingKeys: String, CodingKey { case first, second }
    init(first: Int, second: String) { self.first = first; self.second = second }
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        second = try c.decode(String.self, forKey: .second)
        first = try c.decode(Int.self, forKey: .first)
    }
}

private func roundTrip<T: Codable & Equatable>(_ value: T) throws -> T {
    let bytes = try BinaryEncoder().encode(value)
    return try BinaryDecoder().decode(T.self, from: bytes)
}

@Suite struct BinaryCodingTests {
    @Test func structsRoundTrip() throws {
        let record = Record(
            id: -42, name: "ray ✓ 日本", tags: ["a", "", "c"], score: 0.5, nested: [Point(x: 1, y: -2)],
            lookup: ["one": 1, "two": 2], flag: true, small: -8, big: .max, nothing: nil)
        #expect(try roundTrip(record) == record)
    }

    @Test func scalarsAndOptionalsAtTopLevel() throws {
        #expect(try roundTrip(0) == 0)
        #expect(try roundTrip(Int.min) == Int.min)
        #expect(try roundTrip("") == "")
        #expect(try roundTrip(Optional<Int>.none) == nil)
        #expect(try roundTrip(Optional<Int>.some(0)) == 0)
        #expect(try roundTrip(Optional<Optional<Int>>.some(nil)) == .some(nil))
        #expect(try roundTrip([1, nil, 3] as [Int?]) == [1, nil, 3])
        #expect(try roundTrip(Double.nan).isNaN)
    }

    @Test func enumsWithAssociatedValues() throws {
        for command in [Command.stop, .move(Point(x: 3, y: 4), speed: 2.5), .say("hi")] {
            #expect(try roundTrip(command) == command)
        }
    }

    @Test func keysMayBeReadInAnyOrder() throws {
        #expect(try roundTrip(Reversed(first: 7, second: "x")) == Reversed(first: 7, second: "x"))
    }

    @Test func classes() throws {
        let bytes = try BinaryEncoder().encode(Base(a: 9))
        #expect(try BinaryDecoder().decode(Base.self, from: bytes).a == 9)
    }

    @Test func trivialArraysTakeTheOneCopyPath() throws {
        // A varint count and the raw bytes: 1 + 3 * 4 bytes. Element by element would need 4 + 12.
        let floats: [Float] = [1.5, -2, 3]
        let bytes = try BinaryEncoder().encode(floats)
        #expect(bytes.count == 13)
        #expect(try BinaryDecoder().decode([Float].self, from: bytes) == floats)
        let big = (0..<1_000_000).map { Double($0) * 0.5 }
        #expect(try roundTrip(big) == big)
        let raw = [UInt8](repeating: 7, count: 300)
        #expect(try BinaryEncoder().encode(raw).count == 302)
        #expect(try roundTrip(raw) == raw)
        let data = Data((0..<1000).map { UInt8($0 % 256) })
        #expect(try roundTrip(data) == data)
        #expect(try roundTrip([Int64]()) == [])
    }

    /// Large arrays decode through huge pages and, above 64 MiB, a copy split over the cores: every
    /// byte lands where it belongs, at the parts' edges and in a tail shorter than a page.
    @Test(arguments: [9 << 20 | 3, 70 << 20 | 5])
    func largeArraysDecodeIntact(byteCount: Int) throws {
        var value = [UInt8](repeating: 0xA5, count: byteCount)
        for position in stride(from: 0, to: byteCount, by: 1 << 20) { value[position] = UInt8(truncatingIfNeeded: position >> 20) }
        value[byteCount - 1] = 0x5A
        let decoded = try roundTrip(value)
        #expect(decoded.count == byteCount)
        let same = decoded.withUnsafeBytes { a in value.withUnsafeBytes { b in memcmp(a.baseAddress!, b.baseAddress!, byteCount) == 0 } }
        #expect(same)
    }

    /// `put` and task results write a one-block value from its direct encoding, inline or into the
    /// store; a reader decodes it as any encoding: the two must be the same bytes.
    @Test func aDirectEncodingIsTheValuesEncoding() throws {
        func written(_ direct: DirectEncoding) -> [UInt8] {
            [UInt8](unsafeUninitializedCapacity: direct.size) { buffer, count in
                direct.write(to: UnsafeMutableRawPointer(buffer.baseAddress!))
                count = direct.size
            }
        }
        let encoder = BinaryEncoder()
        func check<T: Encodable>(_ value: T) throws {
            let direct = try #require(encoder.directEncoding(value), "\(T.self) has a direct encoding")
            #expect(written(direct) == (try encoder.encode(value)), "\(T.self)")
        }
        try check([Int]())
        try check([1, -2, 3])
        try check([Double](repeating: 0.25, count: 200))
        try check([UInt8](repeating: 9, count: 300))
        try check(Data([1, 2, 3]))
        try check(Data())
        #expect(encoder.directEncoding("text") == nil)
        #expect(encoder.directEncoding(Point(x: 1, y: 2)) == nil)
        #expect(encoder.directEncoding([Point(x: 1, y: 2)]) == nil)
        #expect(encoder.directEncoding(Optional([1, 2])) == nil)
    }

    @Test func arraysInsideStructs() throws {
        struct Holder: Codable, Equatable { var values: [Float]; var label: String }
        let holder = Holder(values: [1, 2, 3], label: "v")
        #expect(try roundTrip(holder) == holder)
    }

    @Test(arguments: [0, 1, 5, 10, 20])
    func truncatedInputThrows(cut: Int) throws {
        let record = Record(
            id: 1, name: "name", tags: ["t"], score: nil, nested: [], lookup: [:], flag: false, small: 0, big: 1,
            nothing: "x")
        let bytes = try BinaryEncoder().encode(record)
        #expect(throws: SerializationError.self) {
            _ = try BinaryDecoder().decode(Record.self, from: Array(bytes.prefix(cut)))
        }
    }

    @Test func garbageAndTypeMismatchThrow() throws {
        #expect(throws: SerializationError.self) {
            _ = try BinaryDecoder().decode(Record.self, from: [0xFF, 0xFF, 0xFF, 0x7F, 1, 2, 3])
        }
        let bytes = try BinaryEncoder().encode(Point(x: 1, y: 2))
        #expect(throws: SerializationError.self) { _ = try BinaryDecoder().decode(Record.self, from: bytes) }
        #expect(throws: SerializationError.self) { _ = try BinaryDecoder().decode(String.self, from: [5, 0xC3, 0x28, 1, 1, 1]) }
        #expect(throws: SerializationError.self) {
            _ = try BinaryDecoder().decode(Int.self, from: try BinaryEncoder().encode(1) + [0])
        }
    }
}
