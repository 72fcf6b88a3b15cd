/// TLS for a server: its certificate chain and key (PEM), and optionally a CA that client certificates
/// must be signed by (mutual TLS).
public struct ServerTLS: Sendable, Hashable {
    public var certificateChainPEM: String
    public var privateKeyPEM: String
    public var clientCAPEM: String?

    public init(certificateChainPEM: String, privateKeyPEM: String, clientCAPEM: String? = nil) {
        self.certificateChainPEM = certificateChainPEM
        self.privateKeyPEM = privateKeyPEM
        self.clientCAPEM = clientCAPEM
    }
}

/// TLS for a client: the CA to trust (PEM), optionally a client certificate and key for mutual TLS,
/// and optionally the server name to verify instead of the target's host.
public struct ClientTLS: Sendable, Hashable {
    public var rootCAPEM: String
    public var certificateChainPEM: String?
    public var privateKeyPEM: String?
    public var serverName: String?

    public init(rootCAPEM: String, certificateChainPEM: String? = nil, privateKeyPEM: String? = nil,
                serverName: String? = nil) {
        self.rootCAPEM = rootCAPEM
        self.certificateChainPEM = certificateChainPEM
        self.privateKeyPEM = privateKeyPEM
        self.serverName = serverName
    }
}
