import Testing
import RayYAML

@Suite struct YAMLTests {
    @Test func mappingWithTypedScalars() throws {
        let yaml = """
            name: ray-head
            replicas: 3
            ratio: 0.5
            enabled: true
            quoted: "123"
            nothing: ~
            hex: 0x1F
            list: [1, two, 3.0]
            nested:
              a: {b: false}
            """
        let json = try YAML.toJSON(yaml)
        #expect(json == #"{"name":"ray-head","replicas":3,"ratio":0.5,"enabled":true,"quoted":"123","nothing":null,"hex":31,"list":[1,"two",3],"nested":{"a":{"b":false}}}"#)
    }

    @Test func stringsAreEscaped() throws {
        #expect(try YAML.toJSON("s: \"a\\\"b\\\\c\\nd\"") == #"{"s":"a\"b\\c\nd"}"#)
    }

    @Test func multipleDocuments() throws {
        let yaml = "a: 1\n---\nb: [x]\n---\n- 2\n"
        #expect(try YAML.documentsToJSON(yaml) == #"[{"a":1},{"b":["x"]},[2]]"#)
        #expect(throws: YAML.ParseError.self) { try YAML.toJSON(yaml) }
    }

    @Test func emptyInputIsNull() throws {
        #expect(try YAML.toJSON("") == "null")
        #expect(try YAML.documentsToJSON("") == "[]")
    }

    @Test(arguments: [
        ("key: [1, 2\nother: 3", 2),
        ("a: 1\n  b: 2\n", 2),
        ("a:\n  - x\n - y\n", 3),
    ])
    func badYAMLReportsLineAndColumn(yaml: String, line: Int) {
        do {
            _ = try YAML.toJSON(yaml)
            Issue.record("expected a parse error for \(yaml.debugDescription)")
        } catch {
            #expect(error.line == line)
            #expect(error.column >= 1)
            #expect(!error.message.isEmpty)
        }
    }
}
