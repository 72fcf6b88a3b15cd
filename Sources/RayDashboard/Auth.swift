import Foundation
import HTTPTypes
import Hummingbird
import RayRPC

/// Ray 2.60's token authentication on the dashboard: the token the cluster's gRPC uses, by the same
/// rules (`RPCAuth.resolve`), with an error when the environment is wrong.
public struct AuthConfig: Sendable, Equatable {
    public var token: String?
    public var enabled: Bool { token != nil }

    public init(token: String?) { self.token = token }

    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AuthConfig {
        AuthConfig(token: try RPCAuth.resolve(environment))
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
