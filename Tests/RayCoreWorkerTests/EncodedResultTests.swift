import Foundation
@testable import RayCommon
@testable import RayCoreWorker
import Testing

/// A put or a task's result is stored from its `EncodedResult`: copied out inline or written into
/// the store. Both must give the value's encoding, whichever case holds it.
@Suite struct EncodedResultTests {
    private func written(_ encoded: EncodedResult) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: encoded.size) { buffer, count in
            if encoded.size > 0 { encoded.write(to: UnsafeMutableRawPointer(buffer.baseAddress!)) }
            count = encoded.size
        }
    }

    @Test func bothCasesStoreTheValuesEncoding() throws {
        func check<T: Encodable>(_ value: T) throws {
            let encoded = try EncodedResult(value)
            let expected = try BinaryEncoder().encode(value)
            #expect(encoded.size == expected.count, "\(T.self)")
            #expect(encoded.bytes == expected, "\(T.self)")
            #expect(written(encoded) == expected, "\(T.self)")
        }
        try check([1, 2, 3])
        try check(Data([4, 5]))
        try check([Float]())
        try check("text")
        try check(42)
        try check(["a": 1])
        guard case .direct = try EncodedResult([1, 2, 3]) else { Issue.record("an Int array is one block"); return }
        guard case .bytes = try EncodedResult("text") else { Issue.record("a string is bytes"); return }
    }

    @Test func aValueThatDoesNotEncodeThrowsItsSerializationError() {
        struct Refuses: Encodable {
            func encode(to encoder: any Encoder) throws { throw SerializationError(.unsupported, "no") }
        }
        #expect(throws: SerializationError.self) { _ = try EncodedResult(Refuses()) }
    }
}
