/// Ray 2.60's `label_selector`: for each label key, a condition the node's value of that label must
/// meet. A value is written as Ray writes it: `"b"` (equals), `"!b"` (not equal), `"in(a,b)"` (one of)
/// and `"!in(a,b)"` (none of). A node without the label fails `equals` and `in`, and passes `!` and
/// `!in`.
public struct LabelSelector: Sendable, Hashable, CustomStringConvertible {
    public enum Condition: Sendable, Hashable {
        case equals(String)
        case notEquals(String)
        case isIn(Set<String>)
        case notIn(Set<String>)

        func holds(for value: String?) -> Bool {
            switch self {
            case .equals(let expected): value == expected
            case .notEquals(let excluded): value != excluded
            case .isIn(let allowed): value.map(allowed.contains) ?? false
            case .notIn(let excluded): !(value.map(excluded.contains) ?? false)
            }
        }
    }

    public private(set) var conditions: [String: Condition] = [:]

    /// Matches every node.
    public init() {}

    /// Parses Ray's form, `["zone": "in(a,b)", "disk": "!hdd"]`; throws ``LabelError`` naming the
    /// key or value that is not valid.
    public init(_ selector: [String: String]) throws(LabelError) {
        for (key, written) in selector {
            try Labels.validate(key: key)
            conditions[key] = try Self.condition(key: key, written)
        }
    }

    public var isEmpty: Bool { conditions.isEmpty }

    /// True if the node's labels meet every condition.
    public func matches(_ labels: [String: String]) -> Bool {
        conditions.allSatisfy { key, condition in condition.holds(for: labels[key]) }
    }

    /// The selector as Ray writes it, keys sorted.
    public var written: [String: String] {
        conditions.mapValues { condition in
            switch condition {
            case .equals(let value): value
            case .notEquals(let value): "!" + value
            case .isIn(let values): "in(" + values.sorted().joined(separator: ",") + ")"
            case .notIn(let values): "!in(" + values.sorted().joined(separator: ",") + ")"
            }
        }
    }

    public var description: String {
        "{" + written.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
    }

    private static func condition(key: String, _ written: String) throws(LabelError) -> Condition {
        var text = Substring(written)
        let negated = text.hasPrefix("!")
        if negated { text = text.dropFirst() }
        if text.hasPrefix("in(") {
            guard text.hasSuffix(")") else {
                throw LabelError("label selector \(key): \(written) opens 'in(' without closing it")
            }
            let list = text.dropFirst(3).dropLast()
            let values = list.split(separator: ",", omittingEmptySubsequences: false).map {
                String($0.trimmingWhitespace())
            }
            guard !list.allSatisfy(\.isWhitespace) else {
                throw LabelError("label selector \(key): \(written) lists no values")
            }
            for value in values { try Labels.validate(value: value, of: key, allowEmpty: false) }
            return negated ? .notIn(Set(values)) : .isIn(Set(values))
        }
        let value = String(text)
        try Labels.validate(value: value, of: key, allowEmpty: negated)
        return negated ? .notEquals(value) : .equals(value)
    }
}

extension Substring {
    func trimmingWhitespace() -> Substring {
        var s = self
        while s.first?.isWhitespace == true { s.removeFirst() }
        while s.last?.isWhitespace == true { s.removeLast() }
        return s
    }
}
