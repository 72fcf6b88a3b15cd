import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import RayCommon
import RayDashboard
import RayGCSClient
import RayJobs
import ZIPFoundation

/// A client of the Jobs REST API (the dashboard's), as Ray's `JobSubmissionClient` is: the address
/// resolved as Ray resolves it, the token sent when `RAY_AUTH_MODE=token`.
struct JobClient {
    let url: String
    let token: String?

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// `--address`, else `RAY_API_SERVER_ADDRESS`, `RAY_ADDRESS`, else the cluster `ray start` started.
    /// An `http(s)://` address is the dashboard itself; any other is a GCS, asked where its dashboard is.
    static func connect(_ address: String?, tempDir: String?) async throws -> JobClient {
        let environment = ProcessInfo.processInfo.environment
        let target = address ?? environment["RAY_API_SERVER_ADDRESS"] ?? environment["RAY_ADDRESS"]
            ?? (try? String(contentsOf: Session.currentClusterFile(in: Session.tempDirectory(tempDir)), encoding: .utf8))
        guard let target, !target.isEmpty else {
            throw Failure(description: "no cluster: pass --address http://HEAD:8265 (or start one with `ray start --head`)")
        }
        // Ray's clients send the token only when RAY_AUTH_MODE=token is set where they run.
        let token = environment["RAY_AUTH_MODE"]?.lowercased() == "token" ? try AuthConfig.fromEnvironment(environment).token : nil
        if target.hasPrefix("http://") || target.hasPrefix("https://") {
            return JobClient(url: String(target.trimmingSuffix("/")), token: token)
        }
        let gcsAddress = target.hasPrefix("ray://") ? String(target.dropFirst(6)) : target
        let gcs = try GCSClient(address: gcsAddress, timeout: .seconds(5))
        guard let dashboard = try? await gcs.kv(namespace: "dashboard").get("dashboard") else {
            throw Failure(description: "the cluster at \(gcsAddress) has no dashboard (no GCS answers there, or it was started with --include-dashboard false)")
        }
        return JobClient(url: "http://" + String(decoding: dashboard, as: UTF8.self), token: token)
    }

    struct Reply {
        let status: Int
        let body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
        func json() throws -> JSON { try JSON.parse(body) }
    }

    func call(_ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json") async throws -> Reply {
        guard let address = URL(string: url + path) else { throw Failure(description: "not a URL: \(url + path)") }
        var request = URLRequest(url: address, timeoutInterval: 60)
        request.httpMethod = method
        request.httpBody = body
        if body != nil { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, response): (Data, URLResponse)
        do { (data, response) = try await URLSession.shared.data(for: request) } catch {
            throw Failure(description: "no Jobs API answers at \(url): \(error.localizedDescription)")
        }
        return Reply(status: (response as? HTTPURLResponse)?.statusCode ?? 0, body: data)
    }

    /// The call's JSON, or a failure carrying the server's own words.
    func expect(_ method: String, _ path: String, body: Data? = nil) async throws -> JSON {
        let reply = try await call(method, path, body: body)
        guard reply.status == 200 else { throw Failure(description: "\(method) \(path) → \(reply.status): \(reply.text)") }
        do { return try reply.json() } catch { throw Failure(description: "\(method) \(path) answered with no JSON: \(reply.text)") }
    }

    // MARK: working directories

    /// Zips `directory` (its contents at the zip's root, as Ray's client packs them), uploads it
    /// unless the server has it, and returns its `gcs://_ray_pkg_<hash>.zip` URI.
    func upload(directory: String, progress: (String) -> Void) async throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw Failure(description: "--working-dir \(directory) is not a directory")
        }
        let root = URL(fileURLWithPath: directory).standardizedFileURL
        let archive = try Archive(data: Data(), accessMode: .create)
        var hash = FNV1a()
        let files = (FileManager.default.enumerator(atPath: root.path)?.compactMap { $0 as? String } ?? []).sorted()
        for relative in files where !relative.split(separator: "/").contains(".git") {
            let file = root.appendingPathComponent(relative)
            let attributes = try FileManager.default.attributesOfItem(atPath: file.path)
            guard (attributes[.type] as? FileAttributeType) == .typeRegular else { continue }
            let data = try Data(contentsOf: file)
            hash.add(Array(relative.utf8) + [0])
            hash.add(data)
            let permissions = (attributes[.posixPermissions] as? NSNumber)?.uint16Value ?? 0o644
            try archive.addEntry(with: relative, type: .file, uncompressedSize: Int64(data.count), permissions: permissions,
                                 compressionMethod: .deflate,
                                 provider: { position, size in data.subdata(in: Int(position)..<Int(position) + size) })
        }
        guard let bytes = archive.data else { throw Failure(description: "could not zip \(directory)") }
        guard bytes.count <= RuntimeEnvPackage.maxBytes else {
            throw Failure(description: "the working directory zips to \(bytes.count) bytes, more than the 100 MiB a package may be")
        }
        let name = "_ray_pkg_\(hash.hex).zip"
        let path = "/api/packages/gcs/\(name)"
        if try await call("GET", path).status == 404 {
            progress("Uploading package gcs://\(name) (\(bytes.count) bytes).")
            let put = try await call("PUT", path, body: bytes, contentType: "application/octet-stream")
            guard put.status == 200 else { throw Failure(description: "uploading the working directory failed: \(put.status) \(put.text)") }
            progress("Finished uploading package gcs://\(name).")
        } else {
            progress("Package gcs://\(name) already exists, skipping upload.")
        }
        return "gcs://\(name)"
    }
}

/// 64-bit FNV-1a over the files' paths and bytes: a package's name follows its contents.
struct FNV1a {
    var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(_ bytes: some Sequence<UInt8>) {
        for byte in bytes {
            value ^= UInt64(byte)
            value &*= 0x100_0000_01b3
        }
    }
    var hex: String { String(value, radix: 16).leftPadded(to: 16) }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> Substring { hasSuffix(suffix) ? dropLast(suffix.count) : self[...] }
    func leftPadded(to count: Int) -> String { String(repeating: "0", count: max(0, count - self.count)) + self }
}
