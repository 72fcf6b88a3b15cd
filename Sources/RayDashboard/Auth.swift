import Foundation
import HTTPTypes
import Hummingbird

/// Ray 2.60's token authentication (`ray/_private/authentication/*`): `RAY_AUTH_MODE=token`, the
/// token from `RAY_AUTH_TOKEN`, else the file `RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token`. With no
/// `RAY_AUTH_MODE`, a head is in token mode when that file exists, as Ray's `ray start --head` is.
public struct AuthConfig: Sendable, Equatable {
    public var token: String?
    public var enabled: Bool { token != nil }

    public init(token: String?) { self.token = token }

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    public static var defaultTokenPath: String {
        FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".ray/auth_token").path
    }

    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AuthConfig {
        let mode = environment["RAY_AUTH_MODE"]?.lowercased()
        let path = environment["RAY_AUTH_TOKEN_PATH"].flatMap { $0.isEmpty ? nil : $0 } ?? defaultTokenPath
        func load() throws -> String? {
            if let token = environment["RAY_AUTH_TOKEN"]?.trimmingCharacters(in: .whitespacesAndNewlines), !token.isEmpty {
                return token
            }
            guard FileManager.default.fileExists(atPath: path) else { return nil }
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw Invalid(description: "cannot read the auth token file \(path)")
            }
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else { throw Invalid(description: "the auth token file \(path) is empty") }
            return token
        }
        switch mode {
        case "token":
            guard let token = try load() else {
                throw Invalid(description: "RAY_AUTH_MODE=token but no token: set RAY_AUTH_TOKEN, or write one to \(path) (or RAY_AUTH_TOKEN_PATH)")
            }
            return AuthConfig(token: token)
        case "disabled", "":
            return AuthConfig(token: nil)
        case nil:
            // On when the token file exists (as Ray's `ray start --head` decides).
            return FileManager.default.fileExists(atPath: path) ? AuthConfig(token: try load()) : AuthConfig(token: nil)
        case let other?:
            throw Invalid(description: "RAY_AUTH_MODE must be 'token' or 'disabled', got '\(other)'")
        }
    }
}

/// Checks every request but Ray's public paths for the token; refuses writes from browsers (Ray's
/// defence against cross-site requests), with Ray's status codes and texts.
struct AuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let config: AuthConfig

    static func isPublic(_ path: String) -> Bool {
        ["/", "/favicon.ico", "/api/authentication_mode", "/api/authenticate", "/api/healthz", "/api/gcs_healthz",
         "/api/local_raylet_healthz", "/-/healthz"].contains(path) || path.hasPrefix("/static/")
    }

    static func looksLikeABrowser(_ request: Request) -> Bool {
        if request.headers[.userAgent]?.hasPrefix("Mozilla") == true { return true }
        for name in ["Referer", "Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Access-Control-Request-Method"] {
            if let field = HTTPField.Name(name), request.headers[field] != nil { return true }
        }
        return false
    }

    /// The token a request carries: `Authorization: Bearer`, `X-Ray-Authorization: Bearer`, or the cookie.
    static func presentedToken(_ request: Request) -> String? {
        for name in ["Authorization", "X-Ray-Authorization"] {
            if let field = HTTPField.Name(name), let value = request.headers[field] {
                let parts = value.split(separator: " ", maxSplits: 1)
                if parts.count == 2, parts[0].lowercased() == "bearer" { return String(parts[1]).trimmingCharacters(in: .whitespaces) }
            }
        }
        for cookies in request.headers[values: .cookie] {
            for cookie in cookies.split(separator: ";") {
                let pair = cookie.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if pair.count == 2, pair[0] == "ray-authentication-token" { return String(pair[1]) }
            }
        }
        return nil
    }

    /// Compares in time that does not depend on where the strings differ.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) { difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
        return difference == 0
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let method = request.method
        if method != .get && method != .head && method != .options && Self.looksLikeABrowser(request) {
            return HTTP.text("'\(method.rawValue)' method not allowed for browser traffic", status: .methodNotAllowed)
        }
        guard let token = config.token, !Self.isPublic(request.uri.path) else { return try await next(request, context) }
        guard let presented = Self.presentedToken(request) else {
            return HTTP.text("Unauthorized: Missing authentication token", status: .unauthorized)
        }
        guard Self.same(presented, token) else { return HTTP.text("Forbidden: Invalid authentication token", status: .forbidden) }
        return try await next(request, context)
    }
}
