import Foundation
import RayRPC
import RPCTestService
import Testing

/// A self-signed certificate for 127.0.0.1 and localhost, made with the openssl command.
struct SelfSignedCertificate {
    let certificatePEM: String
    let keyPEM: String

    static func make(commonName: String) throws -> SelfSignedCertificate {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swift-ray-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let cert = dir.appendingPathComponent("cert.pem")
        let key = dir.appendingPathComponent("key.pem")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key.path, "-out", cert.path, "-days", "1", "-subj", "/CN=\(commonName)",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw RPCError(code: .internalError, message: "openssl failed with \(process.terminationStatus)")
        }
        return SelfSignedCertificate(
            certificatePEM: try String(contentsOf: cert, encoding: .utf8), keyPEM: try String(contentsOf: key, encoding: .utf8))
    }
}

@Suite(.timeLimit(.minutes(1))) struct TLSTests {
    @Test func callSucceedsWithTheRightCAAndFailsCleanlyWithTheWrongOne() async throws {
        let serverCert = try SelfSignedCertificate.make(commonName: "swift-ray-test-server")
        let otherCA = try SelfSignedCertificate.make(commonName: "someone-else")
        var serverConfiguration = RPCServer.Configuration()
        serverConfiguration.tls = ServerTLS(certificateChainPEM: serverCert.certificatePEM, privateKeyPEM: serverCert.keyPEM)
        let server = try RPCServer(router: TestService.router(), configuration: serverConfiguration)

        var good = RPCChannel.Configuration()
        good.tls = ClientTLS(rootCAPEM: serverCert.certificatePEM)
        let trusted = try RPCChannel(host: "127.0.0.1", port: server.port, configuration: good)
        #expect(try await trusted.unary(TestService.echo, echoRequest("secret")).text == "secret")

        var bad = RPCChannel.Configuration()
        bad.tls = ClientTLS(rootCAPEM: otherCA.certificatePEM)
        let untrusted = try RPCChannel(host: "127.0.0.1", port: server.port, configuration: bad)
        let error = await rpcError {
            _ = try await untrusted.unary(TestService.echo, echoRequest(), options: CallOptions(timeout: .seconds(5)))
        }
        #expect(error?.code == .unavailable)

        let plaintext = try RPCChannel(host: "127.0.0.1", port: server.port)
        let plainError = await rpcError {
            _ = try await plaintext.unary(TestService.echo, echoRequest(), options: CallOptions(timeout: .seconds(5)))
        }
        #expect(plainError?.code == .unavailable)

        // The server keeps serving trusted clients.
        #expect(try await trusted.unary(TestService.echo, echoRequest("again")).text == "again")
        await server.shutdown(grace: .zero)
    }

    @Test func mutualTLSRequiresAClientCertificate() async throws {
        let serverCert = try SelfSignedCertificate.make(commonName: "server")
        let clientCert = try SelfSignedCertificate.make(commonName: "client")
        var serverConfiguration = RPCServer.Configuration()
        serverConfiguration.tls = ServerTLS(
            certificateChainPEM: serverCert.certificatePEM, privateKeyPEM: serverCert.keyPEM,
            clientCAPEM: clientCert.certificatePEM)
        let server = try RPCServer(router: TestService.router(), configuration: serverConfiguration)

        var withCert = RPCChannel.Configuration()
        withCert.tls = ClientTLS(
            rootCAPEM: serverCert.certificatePEM, certificateChainPEM: clientCert.certificatePEM,
            privateKeyPEM: clientCert.keyPEM)
        let authenticated = try RPCChannel(host: "127.0.0.1", port: server.port, configuration: withCert)
        #expect(try await authenticated.unary(TestService.echo, echoRequest("mtls")).text == "mtls")

        var withoutCert = RPCChannel.Configuration()
        withoutCert.tls = ClientTLS(rootCAPEM: serverCert.certificatePEM)
        let anonymous = try RPCChannel(host: "127.0.0.1", port: server.port, configuration: withoutCert)
        let error = await rpcError {
            _ = try await anonymous.unary(TestService.echo, echoRequest(), options: CallOptions(timeout: .seconds(5)))
        }
        #expect(error?.code == .unavailable)
        await server.shutdown(grace: .zero)
    }

    @Test func halfConfiguredTLSIsRejected() {
        #expect(throws: RPCError.self) {
            var configuration = RPCChannel.Configuration()
            configuration.tls = ClientTLS(rootCAPEM: "x", certificateChainPEM: "y", privateKeyPEM: nil)
            _ = try RPCChannel(target: "127.0.0.1:1", configuration: configuration)
        }
    }
}
