/// Amounts of resources by name ("CPU", "memory", custom ones), kept in fixed point (1/10,000 of a
/// unit, as Ray does) so that ten tasks of 0.1 CPU add up to exactly one CPU.
public struct ResourceSet: Sendable, Hashable, CustomStringConvertible {
    static let scale = 10_000.0
    private(set) var units: [String: Int64] = [:]

    public init() {}

    public init(_ amounts: [String: Double]) {
        for (name, amount) in amounts where amount != 0 { units[name] = Int64((amount * Self.scale).rounded()) }
    }

    public var amounts: [String: Double] { units.mapValues { Double($0) / Self.scale } }
    public var isEmpty: Bool { units.isEmpty }

    public subscript(name: String) -> Double { Double(units[name] ?? 0) / Self.scale }

    /// True if every amount in `request` is available here.
    public func covers(_ request: ResourceSet) -> Bool {
        request.units.allSatisfy { name, amount in amount <= (units[name] ?? 0) }
    }

    /// Forgets those of `names` that are down to zero (or below).
    public mutating func dropEmpty(_ names: some Sequence<String>) {
        for name in names where (units[name] ?? 0) <= 0 { units[name] = nil }
    }

    public mutating func subtract(_ other: ResourceSet) {
        for (name, amount) in other.units { units[name, default: 0] -= amount }
    }

    public mutating func add(_ other: ResourceSet) {
        for (name, amount) in other.units { units[name, default: 0] += amount }
    }

    /// The amounts whose names pass `isIncluded`.
    public func filter(_ isIncluded: (String) -> Bool) -> ResourceSet {
        var copy = ResourceSet()
        copy.units = units.filter { isIncluded($0.key) }
        return copy
    }

    /// The names in `request` this set does not have enough of, with what it has.
    public func shortfall(of request: ResourceSet) -> [String: Double] {
        var missing: [String: Double] = [:]
        for (name, amount) in request.units where amount > (units[name] ?? 0) { missing[name] = self[name] }
        return missing
    }

    /// As Ray's Python prints a resource dict (`ray status`, warnings): `{'CPU': 1.0, 'accel': 2.0}`.
    public var rayDescription: String {
        "{" + amounts.sorted { $0.key < $1.key }.map { "'\($0.key)': \($0.value)" }.joined(separator: ", ") + "}"
    }

    public var description: String {
        "{" + amounts.sorted { $0.key < $1.key }.map { "\($0.key): \(format($0.value))" }.joined(separator: ", ") + "}"
    }
}

func format(_ amount: Double) -> String {
    amount == amount.rounded() ? String(Int(amount)) : String(amount)
}
