import Synchronization

/// What a handler knows about its call, and where it puts trailing metadata.
public final class ServerContext: Sendable {
    /// The method path, `/package.Service/Method`.
    public let method: String
    /// Metadata the client sent with the request.
    public let requestMetadata: Metadata
    /// When the client stops waiting, if it set a deadline.
    public let deadline: ContinuousClock.Instant?
    private let trailing = Mutex(Metadata())

    init(method: String, requestMetadata: Metadata, deadline: ContinuousClock.Instant?) {
        self.method = method
        self.requestMetadata = requestMetadata
        self.deadline = deadline
    }

    /// Adds an entry to the trailing metadata sent with the status.
    public func addTrailingMetadata(_ key: String, _ value: String) {
        trailing.withLock { $0.add(key, value) }
    }

    /// Adds a binary entry (the key should end in `-bin`) to the trailing metadata.
    public func addTrailingMetadata(_ key: String, bytes: [UInt8]) {
        trailing.withLock { $0.add(key, bytes: bytes) }
    }

    var trailingMetadata: Metadata { trailing.withLock { $0 } }
}
