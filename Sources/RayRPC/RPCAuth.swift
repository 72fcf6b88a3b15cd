#if canImport(Glibc)
import Glibc
#endif

/// Ray 2.60's token authentication on the control plane's gRPC: with `RAY_AUTH_MODE=token` (or,
/// without `RAY_AUTH_MODE`, when `~/.ray/auth_token` exists, as Ray's `ray start --head` decides),
/// every call this process makes carries `authorization: Bearer <token>` and every server it runs
/// refuses calls without it (UNAUTHENTICATED), health checks aside. The token is `RAY_AUTH_TOKEN`,
/// else the file `RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token`; every process of a cluster reads
/// the same one (workers inherit the environment of the raylet that starts them).
public enum RPCAuth {
    /// The token this process uses; nil without one, or when the environment is wrong (the
    /// dashboard, which resolves the same rules, refuses to start then and says why).
    public static let token: String? = try? resolve(Environment.current.values)

    static let metadataKey = "authorization"
    static let exempt: Set<String> = ["/grpc.health.v1.Health/Check"]

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    struct Environment {
        var values: [String: String]
        static var current: Environment {
            var values: [String: String] = [:]
            var pointer = environ
            while let entry = pointer.pointee {
                let text = String(cString: entry)
                if let equals = text.firstIndex(of: "=") {
                    values[String(text[..<equals])] = String(text[text.index(after: equals)...])
                }
                pointer += 1
            }
            return Environment(values: values)
        }
    }

    /// Ray 2.60's rules (`ray/_private/authentication/*`): `RAY_AUTH_MODE=token` needs a token;
    /// `disabled` (or empty) has none; without `RAY_AUTH_MODE`, token mode is on when the token file
    /// exists (as Ray's `ray start --head` decides). The token is `RAY_AUTH_TOKEN`, else the file
    /// `RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token`.
    public static func resolve(_ values: [String: String]) throws(Invalid) -> String? {
        let path = values["RAY_AUTH_TOKEN_PATH"].flatMap { $0.isEmpty ? nil : $0 } ?? ((values["HOME"] ?? "/root") + "/.ray/auth_token")
        func load() throws(Invalid) -> String? {
            if let token = values["RAY_AUTH_TOKEN"].map(trimmed), !token.isEmpty { return token }
            guard access(path, F_OK) == 0 else { return nil }
            guard let text = readFile(path) else { throw Invalid(description: "cannot read the auth token file \(path)") }
            let token = trimmed(text)
            guard !token.isEmpty else { throw Invalid(description: "the auth token file \(path) is empty") }
            return token
        }
        switch values["RAY_AUTH_MODE"]?.lowercased() {
        case "token":
            guard let token = try load() else {
                throw Invalid(description: "RAY_AUTH_MODE=token but no token: set RAY_AUTH_TOKEN, or write one to \(path) (or RAY_AUTH_TOKEN_PATH)")
            }
            return token
        case "disabled", "":
            return nil
        case nil:
            return access(path, F_OK) == 0 ? try load() : nil
        case let other?:
            throw Invalid(description: "RAY_AUTH_MODE must be 'token' or 'disabled', got '\(other)'")
        }
    }

    /// A small file's text (a token: at most 4 KiB is read).
    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n >= 0 else { return nil }
        return String(decoding: bytes[0..<n], as: UTF8.self)
    }

    static func trimmed(_ text: String) -> String {
        var text = Substring(text)
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }

    /// The `authorization` value a call must carry for `token`, as bytes (made once per server).
    static func expectedHeader(_ token: String) -> [UInt8] { Array("Bearer \(token)".utf8) }

    /// True if a call's metadata carries `expected` (compared in time that does not depend on where it differs).
    static func accepts(_ metadata: Metadata, expected: [UInt8]) -> Bool {
        guard let value = metadata[metadataKey] else { return false }
        var difference = UInt8(expected.count == value.utf8.count ? 0 : 1)
        var given = value.utf8.makeIterator()
        for i in 0..<max(expected.count, value.utf8.count) {
            difference |= (i < expected.count ? expected[i] : 0) ^ (given.next() ?? 0)
        }
        return difference == 0
    }
}
