import Foundation
import RayCommon
import RayJobs
import Testing
import ZIPFoundation

@Suite struct JSONTests {
    @Test func keepsKeyOrderIntegersAndBooleans() throws {
        let text = #"{"b":1,"a":0.5,"c":[true,null,"x\"y\n"],"d":{}}"#
        let json = try JSON.parse(text)
        #expect(json.text == text)
        #expect(json["b"] == .int(1))
        #expect(json["a"] == .double(0.5))
        #expect(json["c"] == .array([.bool(true), .null, .string("x\"y\n")]))
    }

    @Test func unicodeEscapesAndSurrogatePairs() throws {
        #expect(try JSON.parse(#""\u00e9\ud83d\ude00""#) == .string("é😀"))
        #expect(JSON.string("\u{01}").text == #""\u0001""#)
    }

    @Test(arguments: ["", "{", "{\"a\":}", "[1,]", "tru", "\"abc", "{\"a\":1}x", "01x", "-", "{'a':1}", "\"\u{01}\""])
    func malformedTextIsAnErrorWithAnOffset(_ text: String) {
        #expect(throws: JSON.ParseError.self) { try JSON.parse(text) }
    }

    @Test func deepNestingIsRefusedNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSON.ParseError.self) { try JSON.parse(deep) }
    }
}

@Suite struct JobSubmitRequestTests {
    @Test func whatRaysCLISendsParses() throws {
        let request = try JobSubmitRequest.parse(Array(#"{"entrypoint": "echo hello", "runtime_env": {}, "metadata": {}}"#.utf8))
        #expect(request.entrypoint == "echo hello")
        #expect(request.submissionID == nil)
        #expect(request.runtimeEnv == .object([]))
        #expect(request.metadata.isEmpty)
    }

    @Test func everyFieldParsesAndNullsAreDropped() throws {
        let body = #"""
        {"entrypoint": "./app", "submission_id": "mine-1", "runtime_env": {"working_dir": "gcs://_ray_pkg_abc.zip",
         "env_vars": {"A": "1"}}, "metadata": {"owner": "me"}, "entrypoint_num_cpus": 1, "entrypoint_num_gpus": 0.5,
         "entrypoint_memory": 1024, "entrypoint_resources": {"accel": 2}, "entrypoint_label_selector": {"zone": "b"},
         "job_id": null}
        """#
        let request = try JobSubmitRequest.parse(Array(body.utf8))
        #expect(request.submissionID == "mine-1")
        #expect(request.workingDirURI == "gcs://_ray_pkg_abc.zip")
        #expect(request.environmentVariables == ["A": "1"])
        #expect(request.metadata == ["owner": "me"])
        #expect(request.entrypointNumCPUs == 1)
        #expect(request.entrypointNumGPUs == 0.5)
        #expect(request.entrypointMemory == 1024)
        #expect(request.entrypointResources == ["accel": 2])
        #expect(request.entrypointLabelSelector == ["zone": "b"])
    }

    @Test func jobIDIsTheDeprecatedNameOfSubmissionID() throws {
        #expect(try JobSubmitRequest.parse(Array(#"{"entrypoint": "x", "job_id": "old"}"#.utf8)).submissionID == "old")
    }

    @Test(arguments: [
        (#"{"entrypoint": "x", "bogus_field": 1}"#, "unexpected keyword argument 'bogus_field'"),
        (#"{"entrypoint": 3}"#, "entrypoint must be a string, got <class 'int'>"),
        (#"{}"#, "missing 1 required positional argument: 'entrypoint'"),
        (#"{"entrypoint": "  "}"#, "entrypoint must not be empty"),
        (#"[1]"#, "must be a JSON object"),
        (#"{"entrypoint": "x""#, "not valid JSON"),
        (#"{"entrypoint": "x", "submission_id": 5}"#, "submission_id must be a string"),
        (#"{"entrypoint": "x", "submission_id": "../etc"}"#, "may not contain '/'"),
        (#"{"entrypoint": "x", "runtime_env": []}"#, "runtime_env must be a dict"),
        (#"{"entrypoint": "x", "runtime_env": {"pip": ["numpy"]}}"#, "runtime_env field 'pip' is not supported"),
        (#"{"entrypoint": "x", "runtime_env": {"working_dir": "/home/me"}}"#, "must be a package URI"),
        (#"{"entrypoint": "x", "runtime_env": {"env_vars": {"A": 1}}}"#, "dict of strings to strings"),
        (#"{"entrypoint": "x", "metadata": {"a": 1}}"#, "metadata must be a dict of strings to strings"),
        (#"{"entrypoint": "x", "entrypoint_num_cpus": "2"}"#, "entrypoint_num_cpus must be a number, got <class 'str'>"),
        (#"{"entrypoint": "x", "entrypoint_num_cpus": true}"#, "entrypoint_num_cpus must be a number, got <class 'bool'>"),
        (#"{"entrypoint": "x", "entrypoint_num_gpus": -1}"#, "must be a non-negative number"),
        (#"{"entrypoint": "x", "entrypoint_memory": 1.5}"#, "entrypoint_memory must be an int"),
        (#"{"entrypoint": "x", "entrypoint_resources": {"CPU": 1}}"#, "use entrypoint_num_cpus"),
        (#"{"entrypoint": "x", "entrypoint_resources": {"a": "1"}}"#, "values must be numbers"),
        (#"{"entrypoint": "x", "submission_id": "a", "job_id": "b"}"#, "differ"),
    ])
    func badRequestsSayWhatIsWrong(body: String, message: String) {
        do {
            _ = try JobSubmitRequest.parse(Array(body.utf8))
            Issue.record("\(body) was accepted")
        } catch {
            #expect(error.description.contains(message), "\(error.description)")
        }
    }
}

@Suite struct JobInfoTests {
    @Test func submissionIDsLookLikeRays() {
        let ids = (0..<200).map { _ in SubmissionID.generate() }
        #expect(Set(ids).count == ids.count)
        for id in ids {
            #expect(id.hasPrefix("raysubmit_") && id.count == "raysubmit_".count + 16)
            #expect(id.dropFirst(10).allSatisfy { SubmissionID.alphabet.contains($0) })
            #expect(!id.dropFirst(10).contains { "IloO0".contains($0) })
        }
    }

    @Test func jobDetailsHaveRaysKeysInRaysOrder() {
        var info = JobInfo(submissionID: "raysubmit_x", entrypoint: "echo hi", startTime: 5)
        info.status = .FAILED
        info.errorType = .JOB_ENTRYPOINT_COMMAND_ERROR
        info.driverExitCode = 3
        let driver = DriverJob(jobID: "02000000", isDead: true, driverIP: "127.0.0.1", driverPID: 42, entrypoint: "echo hi",
                               startTime: 5, endTime: 6, submissionID: "raysubmit_x")
        let json = JobDetails.json(info, driver: driver, agentAddress: nil)
        guard case .object(let members) = json else { Issue.record("not an object"); return }
        #expect(members.map(\.key) == ["type", "job_id", "submission_id", "driver_info", "status", "entrypoint", "message",
                                       "error_type", "start_time", "end_time", "metadata", "runtime_env",
                                       "driver_agent_http_address", "driver_node_id", "driver_exit_code"])
        #expect(json["driver_info"]?["pid"] == .string("42"))  // Ray sends the pid as a string
        #expect(json["job_id"] == .string("02000000"))
        #expect(json["driver_exit_code"] == .int(3))
        #expect(json["error_type"] == .string("JOB_ENTRYPOINT_COMMAND_ERROR"))
    }
}

@Suite struct PackageTests {
    static func zip(_ entries: [(path: String, contents: String, type: Entry.EntryType)]) throws -> Data {
        let archive = try Archive(data: Data(), accessMode: .create)
        for entry in entries {
            let data = Data(entry.contents.utf8)
            try archive.addEntry(with: entry.path, type: entry.type, uncompressedSize: Int64(data.count),
                                 provider: { position, size in data.subdata(in: Int(position)..<Int(position) + size) })
        }
        return try #require(archive.data)
    }

    @Test func aZipThatStaysInsideIsAccepted() throws {
        try RuntimeEnvPackage.validate(Self.zip([("run.sh", "echo hi", .file), ("sub/data.txt", "x", .file),
                                                 ("sub/link", "../run.sh", .symlink)]))
    }

    @Test(arguments: [
        ("../escape.txt", "x", false, "outside its working directory"),
        ("sub/../../escape.txt", "x", false, "outside its working directory"),
        ("/etc/passwd", "x", false, "outside its working directory"),
        ("link", "../../etc", true, "points outside"),
        ("link", "/etc/passwd", true, "points outside"),
    ])
    func aZipThatEscapesIsRefused(path: String, contents: String, symlink: Bool, message: String) throws {
        let bytes = try Self.zip([(path, contents, symlink ? .symlink : .file)])
        #expect { try RuntimeEnvPackage.validate(bytes) } throws: { "\($0)".contains(message) }
    }

    @Test func bytesThatAreNoZipAreRefused() {
        #expect { try RuntimeEnvPackage.validate(Data("not a zip at all, just some text".utf8)) } throws: {
            "\($0)".contains("not a zip archive")
        }
    }

    @Test(arguments: [("gcs://_ray_pkg_abc.zip", true), ("gcs://a/b.zip", false), ("s3://x.zip", false),
                      ("gcs://.zip", false), ("gcs://x.tar", false)])
    func packageURIs(uri: String, valid: Bool) {
        #expect((RuntimeEnvPackage.parseURI(uri) != nil) == valid)
    }
}
