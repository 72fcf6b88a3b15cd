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
    public static let token: String? = load(Environment.current)

    static let metadataKey = "authorization"
    static let exempt: Set<String> = ["/grpc.health.v1.Health/Check"]

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

    static func load(_ environment: Environment) -> String? {
        let values = environment.values
        let variable = values["RAY_AUTH_TOKEN"].map(trimmed).flatMap { $0.isEmpty ? nil : $0 }
        switch values["RAY_AUTH_MODE"]?.lowercased() {
        case "token": return variable ?? fileToken(values)
        case nil: return fileToken(values).map { variable ?? $0 }  // on when the token file exists
        default: return nil  // "disabled", or anything else (the dashboard refuses to start on that)
        }
    }

    static func fileToken(_ values: [String: String]) -> String? {
        let path = values["RAY_AUTH_TOKEN_PATH"].flatMap { $0.isEmpty ? nil : $0 } ?? ((values["HOME"] ?? "/root") + "/.ray/auth_token")
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        let token = trimmed(String(decoding: bytes[0..<n], as: UTF8.self))
        return token.isEmpty ? nil : token
    }

    static func trimmed(_ text: String) -> String {
        var text = Substring(text)
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }

    /// True if a call's metadata carries `token` (compared in time that does not depend on where it differs).
    static func accepts(_ metadata: Metadata, token: String) -> Bool {
        guard let value = metadata[metadataKey] else { return false }
        let expected = Array("Bearer \(token)".utf8), given = Array(value.utf8)
        var difference = UInt8(expected.count == given.count ? 0 : 1)
        for i in 0..<max(expected.count, given.count) {
            difference |= (i < expected.count ? expected[i] : 0) ^ (i < given.count ? given[i] : 0)
        }
        return difference == 0
    }
}
