import RayScheduling
import Testing

@Suite struct LabelSelectorTests {
    let node = ["zone": "b", "disk": "ssd", "ray.io/node-id": "abc"]

    @Test(arguments: [
        (["zone": "b"], true),
        (["zone": "a"], false),
        (["zone": "!a"], true),
        (["zone": "!b"], false),
        (["zone": "in(a,b)"], true),
        (["zone": "in(a, c)"], false),
        (["zone": "!in(a,c)"], true),
        (["zone": "!in(b,c)"], false),
        (["zone": "b", "disk": "!hdd"], true),
        (["zone": "b", "disk": "hdd"], false),
        // A node without the label: fails equals and in, passes the negations.
        (["gpu": "a100"], false),
        (["gpu": "in(a100,h100)"], false),
        (["gpu": "!a100"], true),
        (["gpu": "!in(a100,h100)"], true),
        (["ray.io/node-id": "abc"], true),
    ])
    func matchesAsRayDoes(selector: [String: String], expected: Bool) throws {
        #expect(try LabelSelector(selector).matches(node) == expected)
    }

    @Test func anEmptySelectorMatchesEveryNode() {
        #expect(LabelSelector().matches([:]))
        #expect(LabelSelector().matches(node))
    }

    @Test func itIsWrittenBackAsRayWritesIt() throws {
        let selector = try LabelSelector(["zone": "in(b, a)", "disk": "!hdd", "rack": "!in(r1)", "os": "linux"])
        #expect(selector.written == ["zone": "in(a,b)", "disk": "!hdd", "rack": "!in(r1)", "os": "linux"])
        #expect(try LabelSelector(selector.written) == selector)
    }

    @Test(arguments: [
        (["zone": "in(a,b"], "without closing"),
        (["zone": "in()"], "lists no values"),
        (["zone": "in(a,,b)"], "cannot be empty"),
        (["zone": ""], "cannot be empty"),
        (["zone": "a b"], "value 'a b'"),
        (["-zone": "a"], "the name must be"),
        (["a/b/c": "a"], "more than one '/'"),
        (["Bad_Prefix/zone": "a"], "DNS subdomain"),
        ([String(repeating: "k", count: 64): "a"], "the name must be"),
    ])
    func badSelectorsSayWhatIsWrong(selector: [String: String], message: String) {
        #expect {
            try LabelSelector(selector)
        } throws: { error in
            "\(error)".contains(message)
        }
    }
}

@Suite struct LabelsTests {
    @Test func rayStartLabelsParse() throws {
        #expect(try Labels.parse("zone=b,disk=ssd") == ["zone": "b", "disk": "ssd"])
        #expect(try Labels.parse(" zone = b , example.com/tier=gold") == ["zone": "b", "example.com/tier": "gold"])
        #expect(try Labels.parse("") == [:])
        #expect(try Labels.parse("empty=") == ["empty": ""])
    }

    @Test(arguments: [
        ("zone", "Label string is not a key-value pair."),
        ("zone=a=b", "Label string is not a key-value pair."),
        ("zone=b,", "an empty entry"),
        ("zone=b,zone=c", "given twice"),
        ("zone=b c", "value 'b c'"),
        ("=b", "the name must be"),
    ])
    func badLabelsSayWhatIsWrong(text: String, message: String) {
        #expect {
            try Labels.parse(text)
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test func usersCannotSetTheNodesID() {
        #expect(throws: LabelError.self) { try Labels.validateUserLabels(["ray.io/node-id": "x"]) }
        #expect(throws: Never.self) { try Labels.validateUserLabels(["zone": "b", "example.com/x": "", "ray.io/availability-zone": "b"]) }
    }
}
