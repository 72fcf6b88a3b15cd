/// Node types whose launches failed lately wait before the next try, twice as long after each
/// failure in a row (never a launch in a tight loop), and are listed under Recent failures.
public struct LaunchBackoff: Sendable {
    public struct Failure: Sendable, Hashable {
        public var type: String
        public var reason: String
        public var at: ContinuousClock.Instant
        /// Failures of this type in a row.
        public var count: Int
    }

    public var base: Duration
    public var maximum: Duration
    /// The newest failure per type (kept for `ray status` while recent, even after a success).
    public private(set) var failures: [String: Failure] = [:]
    private var inARow: [String: Int] = [:]

    public init(base: Duration = .seconds(5), maximum: Duration = .seconds(300)) {
        self.base = base
        self.maximum = maximum
    }

    public mutating func failed(_ type: String, reason: String, at now: ContinuousClock.Instant) {
        inARow[type, default: 0] += 1
        failures[type] = Failure(type: type, reason: reason, at: now, count: inARow[type]!)
    }

    /// A node of the type came up: its next failure waits `base` again.
    public mutating func succeeded(_ type: String) { inARow[type] = nil }

    /// When the type may be launched again (nil: now).
    public func retryAt(_ type: String) -> ContinuousClock.Instant? {
        guard let count = inARow[type], count > 0, let failure = failures[type] else { return nil }
        var wait = base
        for _ in 1..<min(count, 30) where wait < maximum { wait = wait * 2 }
        return failure.at + min(wait, maximum)
    }

    public func blocked(at now: ContinuousClock.Instant) -> Set<String> {
        Set(inARow.keys.filter { type in retryAt(type).map { $0 > now } ?? false })
    }

    /// Failures within `window` of `now`, newest first.
    public func recent(at now: ContinuousClock.Instant, window: Duration = .seconds(600)) -> [Failure] {
        failures.values.filter { now - $0.at <= window }.sorted { $0.at > $1.at }
    }
}
