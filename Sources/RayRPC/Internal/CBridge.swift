import CInterop
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An opaque C pointer that may cross concurrency domains; whoever holds it follows the shim's rules.
struct OpaquePointerBox: @unchecked Sendable {
    let pointer: OpaquePointer
}

extension Metadata {
    /// Metadata from a borrowed C array (copied).
    init(_ pointer: UnsafePointer<cinterop_metadata>?, count: Int) {
        self.init()
        guard let pointer, count > 0 else { return }
        for i in 0..<count {
            let entry = pointer[i]
            let key = String(decoding: UnsafeRawBufferPointer(start: entry.key, count: entry.key_len), as: UTF8.self)
            let value = Array(UnsafeRawBufferPointer(start: entry.value, count: entry.value_len))
            add(key, bytes: value)
        }
    }

    /// Calls `body` with a C view of the entries, valid only inside `body`.
    func withCMetadata<R>(_ body: (UnsafePointer<cinterop_metadata>?, Int) throws -> R) rethrows -> R {
        if entries.isEmpty { return try body(nil, 0) }
        var storage: [UInt8] = []
        var offsets: [(Int, Int, Int, Int)] = []
        offsets.reserveCapacity(entries.count)
        for entry in entries {
            let keyStart = storage.count
            storage.append(contentsOf: entry.key.utf8)
            let valueStart = storage.count
            storage.append(contentsOf: entry.value)
            offsets.append((keyStart, valueStart - keyStart, valueStart, entry.value.count))
        }
        storage.append(0)
        return try storage.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            let list = offsets.map { o in
                cinterop_metadata(key: base + o.0, key_len: o.1, value: base + o.2, value_len: o.3)
            }
            return try list.withUnsafeBufferPointer { try body($0.baseAddress, $0.count) }
        }
    }
}

extension cinterop_event {
    /// The event's message bytes, copied.
    var messageBytes: [UInt8] {
        guard has_message != 0, len > 0, let data else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: len))
    }

    var statusMessage: String {
        guard let status_message, status_message_len > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: status_message, count: status_message_len), as: UTF8.self)
    }

    var methodPath: String {
        guard let method, method_len > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: method, count: method_len), as: UTF8.self)
    }
}

/// Calls `body` with C copies of the strings (NULL for nil), valid only inside `body`.
func withCStrings<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) throws -> R) rethrows -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0)! } }
    defer { for copy in copies { free(copy) } }
    return try body(copies.map { $0.map { UnsafePointer($0) } })
}

/// Takes a malloc'd error string from the shim.
func takeCError(_ err: UnsafeMutablePointer<CChar>?) -> String {
    guard let err else { return "unknown error" }
    defer { cinterop_free(err) }
    return String(cString: err)
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
