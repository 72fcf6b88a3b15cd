/// A label key or value that Ray would refuse, with what is wrong.
public struct LabelError: Error, Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Node labels as Ray (and Kubernetes) write them: keys are `[prefix/]name`, a name and a value up to
/// 63 characters of letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit; a
/// prefix is a DNS subdomain. Keys under `ray.io/` are Ray's own (``Labels/nodeID`` and the rest).
public enum Labels {
    /// Every node's own ID, in hex (Ray: `ray.io/node-id`).
    public static let nodeID = "ray.io/node-id"
    /// The reserved prefix of the labels Ray sets.
    public static let reservedPrefix = "ray.io/"

    /// Parses `ray start --labels`: `key=value` pairs separated by commas (`zone=b,disk=ssd`). An empty
    /// string is no labels.
    public static func parse(_ text: String) throws(LabelError) -> [String: String] {
        var labels: [String: String] = [:]
        for pair in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = pair.trimmingWhitespace()
            if trimmed.isEmpty {
                if text.allSatisfy(\.isWhitespace) { break }
                throw LabelError("--labels \(text): an empty entry; write key=value pairs separated by commas")
            }
            guard let equals = trimmed.firstIndex(of: "="), trimmed.filter({ $0 == "=" }).count == 1 else {
                throw LabelError("--labels \(text): '\(trimmed)' is not key=value (Label string is not a key-value pair.)")
            }
            let key = String(trimmed[..<equals].trimmingWhitespace())
            let value = String(trimmed[trimmed.index(after: equals)...].trimmingWhitespace())
            try validate(key: key)
            try validate(value: value, of: key, allowEmpty: true)
            guard labels[key] == nil else { throw LabelError("--labels \(text): label \(key) is given twice") }
            labels[key] = value
        }
        return labels
    }

    /// Labels a user gives a node: valid, and not the node's ID (Ray lets `ray start --labels` set
    /// its other `ray.io/` labels, such as `ray.io/availability-zone`).
    public static func validateUserLabels(_ labels: [String: String]) throws(LabelError) {
        for (key, value) in labels.sorted(by: { $0.key < $1.key }) {
            try validate(key: key)
            try validate(value: value, of: key, allowEmpty: true)
            if key == nodeID { throw LabelError("label \(key) is the node's own ID, set by Ray") }
        }
    }

    public static func validate(key: String) throws(LabelError) {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { throw LabelError("label key \(key) has more than one '/'") }
        let name = parts.last!
        guard isName(name) else {
            throw LabelError("label key \(key): the name must be 1–63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit")
        }
        if parts.count == 2 {
            let prefix = parts[0]
            let labelsOK = prefix.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { part in
                !part.isEmpty && part.count <= 63 && part.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }
                    && part.first != "-" && part.last != "-"
            }
            guard !prefix.isEmpty, prefix.count <= 253, labelsOK else {
                throw LabelError("label key \(key): the prefix must be a DNS subdomain (lower-case letters, digits, '-' and '.')")
            }
        }
    }

    public static func validate(value: String, of key: String, allowEmpty: Bool) throws(LabelError) {
        if value.isEmpty {
            guard allowEmpty else { throw LabelError("label \(key): the value cannot be empty") }
            return
        }
        guard isName(Substring(value)) else {
            throw LabelError("label \(key): value '\(value)' must be up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit")
        }
    }

    private static func isName(_ text: Substring) -> Bool {
        guard let first = text.first, let last = text.last, text.count <= 63 else { return false }
        func alphanumeric(_ c: Character) -> Bool { c.isASCII && (c.isLetter || c.isNumber) }
        return alphanumeric(first) && alphanumeric(last)
            && text.allSatisfy { alphanumeric($0) || $0 == "-" || $0 == "_" || $0 == "." }
    }
}
