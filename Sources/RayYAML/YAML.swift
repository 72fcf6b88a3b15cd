import CInterop

/// YAML to JSON through yaml-cpp (the shim's YAML part).
public enum YAML {
    /// A YAML document that did not parse, with where it went wrong (1-based).
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var message: String
        public var line: Int
        public var column: Int
        public var description: String { "YAML error at line \(line), column \(column): \(message)" }
    }

    /// Converts one YAML document to JSON text ("null" for an empty input). Plain scalars resolve as in
    /// YAML 1.2's core schema (null, booleans, integers, floats); quoted scalars stay strings.
    public static func toJSON(_ yaml: String) throws(ParseError) -> String {
        try convert(yaml, allDocuments: false)
    }

    /// Converts every document of a multi-document stream (`---` separated) to a JSON array.
    public static func documentsToJSON(_ yaml: String) throws(ParseError) -> String {
        try convert(yaml, allDocuments: true)
    }

    private static func convert(_ yaml: String, allDocuments: Bool) throws(ParseError) -> String {
        var err: UnsafeMutablePointer<CChar>?
        var line: Int32 = 0
        var column: Int32 = 0
        let result = yaml.utf8CString.withUnsafeBufferPointer { text in
            cinterop_yaml_to_json(text.baseAddress, text.count - 1, allDocuments ? 1 : 0, &err, &line, &column)
        }
        guard let result else {
            let message = err.map { String(cString: $0) } ?? "unknown error"
            cinterop_free(err)
            throw ParseError(message: message, line: Int(line), column: Int(column))
        }
        defer { cinterop_free(result) }
        return String(cString: result)
    }
}
