import ArgumentParser
import Foundation
import RayCommon
import RayDashboard

/// `ray list <resource>`: the state API's rows in Ray's table (`ray/util/state/state_cli.py`).
struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the cluster's nodes, actors, tasks, objects, jobs, placement groups or workers.")

    @OptionGroup var target: JobAddress
    @Argument(help: "nodes, actors, tasks, objects, jobs, placement-groups or workers") var resource: String
    @Option(name: [.customShort("f"), .customLong("filter")], help: "KEY=VALUE or KEY!=VALUE (repeatable).")
    var filters: [String] = []
    @Option var limit = 100
    @Flag var detail = false

    /// Each resource's non-detail columns, as the state API's schema has them.
    static let columns: [String: [String]] = Dictionary(uniqueKeysWithValues: ([
        .nodes, .actors, .tasks, .jobs, .placementGroups, .workers, .objects,
    ] as [StateResource]).map { ($0.name, $0.columns) })

    func run() async throws {
        let name = resource.replacingOccurrences(of: "-", with: "_")
        guard let columns = Self.columns[name] else {
            throw ValidationError("unknown resource '\(resource)': one of nodes, actors, tasks, objects, jobs, placement-groups, workers")
        }
        let client = try await JobClient.connect(target.address, tempDir: target.tempDir)
        var query = "limit=\(limit)&detail=\(detail ? "True" : "False")"
        for filter in filters {
            let (key, predicate, value) = try Self.parse(filter)
            query += "&filter_keys=\(Self.escape(key))&filter_predicates=\(Self.escape(predicate))&filter_values=\(Self.escape(value))"
        }
        let reply = try await client.call("GET", "/api/v0/\(name)?\(query)")
        let body = (try? reply.json()) ?? .null
        guard reply.status == 200, body["result"] == .bool(true), let result = body["data"]?["result"] else {
            throw CLIError(body["msg"]?.stringValue ?? "the state API answered \(reply.status): \(reply.text)")
        }
        guard case .array(let rows) = result["result"] ?? .null else { throw CLIError("no rows in the state API's answer") }
        let total = result["total"].flatMap { if case .int(let n) = $0 { n } else { nil } } ?? Int64(rows.count)
        print(Self.render(rows, columns: detail ? nil : columns, resource: name, total: total, at: Date()))
    }

    static func parse(_ filter: String) throws -> (String, String, String) {
        for predicate in ["!=", "="] {
            if let range = filter.range(of: predicate) {
                return (String(filter[..<range.lowerBound]).trimmingCharacters(in: .whitespaces), predicate,
                        String(filter[range.upperBound...]).trimmingCharacters(in: .whitespaces))
            }
        }
        throw ValidationError("a filter is KEY=VALUE or KEY!=VALUE, got '\(filter)'")
    }

    static func escape(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text }

    /// Ray's `get_table_output`: a header with the time, the total, and the rows as tabulate's
    /// "plain" table with an index column.
    static func render(_ rows: [JSON], columns: [String]?, resource: String, total: Int64, at time: Date) -> String {
        let header = "======== List: \(Table.pythonNow(time)) ========"
        if rows.isEmpty { return "No resource in the cluster" }
        let keys = columns ?? {
            guard case .object(let members) = rows[0] else { return [] }
            return members.map(\.key)
        }()
        let cells: [[Table.Cell]] = rows.map { row in
            keys.map { key in Table.cell(row[key] ?? .null, humanizeMemory: resource == "nodes" && key == "resources_total") }
        }
        let table = Table.plain(headers: keys.map { $0.uppercased() }, rows: cells, index: true, numbersLeft: false)
        return "\n\(header)\nStats:\n------------------------------\nTotal: \(total)\n\nTable:\n------------------------------\n\(table)\n"
    }
}

/// `ray summary tasks|actors|objects`: the state API's summaries in Ray's layout.
struct SummaryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "summary", abstract: "Summarize the cluster's tasks, actors or objects.")

    @OptionGroup var target: JobAddress
    @Argument(help: "tasks, actors or objects") var resource: String

    func run() async throws {
        guard ["tasks", "actors", "objects"].contains(resource) else {
            throw ValidationError("summary takes tasks, actors or objects, got '\(resource)'")
        }
        let client = try await JobClient.connect(target.address, tempDir: target.tempDir)
        let reply = try await client.call("GET", "/api/v0/\(resource)/summarize")
        let body = (try? reply.json()) ?? .null
        guard reply.status == 200, let cluster = body["data"]?["result"]?["result"]?["node_id_to_summary"]?["cluster"] else {
            throw CLIError(body["msg"]?.stringValue ?? "the state API answered \(reply.status): \(reply.text)")
        }
        if let warning = body["data"]?["result"]?["partial_failure_warning"]?.stringValue, !warning.isEmpty {
            FileHandle.standardError.write(Data("Warning: \(warning)\n".utf8))
        }
        print(resource == "objects" ? Self.renderObjects(cluster, at: Date()) : Self.render(cluster, resource: resource, at: Date()))
    }

    /// Ray's `format_object_summary_output`: the stats as YAML, then one table per call site.
    static func renderObjects(_ cluster: JSON, at time: Date) -> String {
        var stats: [String] = []
        if case .object(let members) = cluster {
            for member in members.sorted(by: { $0.key < $1.key }) where member.key != "summary" && member.key != "summary_by" {
                stats.append("\(member.key): \(Table.scalar(member.value))")
            }
        }
        var tables: [String] = []
        if case .object(let summary) = cluster["summary"] ?? .null {
            for member in summary {
                guard case .object(let fields) = member.value else { continue }
                let table = Table.plain(headers: fields.map { $0.key.uppercased() }, rows: [fields.map { Table.cell($0.value, humanizeMemory: false) }],
                                        index: true, numbersLeft: true)
                tables.append(member.key.split(separator: "|", omittingEmptySubsequences: false).joined(separator: "\n|") + "\n" + table)
            }
        }
        let rule = "------------------------------------"
        return "\n======== Object Summary: \(Table.pythonNow(time)) ========\nStats:\n\(rule)\n\(stats.joined(separator: "\n"))\n\n\nTable (group by callsite)\n\(rule)\n\(tables.joined(separator: "\n\n\n\n"))\n"
    }

    /// Ray's `format_summary_output`: stats (keys sorted), then one row per name, headers sorted.
    static func render(_ cluster: JSON, resource: String, at time: Date) -> String {
        let title = resource == "tasks" ? "Tasks Summary" : "Actors Summary"
        let by = resource == "tasks" ? "func_name" : "class"
        var stats: [String] = []
        if case .object(let members) = cluster {
            for member in members.sorted(by: { $0.key < $1.key }) where member.key != "summary" && member.key != "summary_by" {
                stats.append("\(member.key): \(Table.cell(member.value, humanizeMemory: false).lines.joined())")
            }
        }
        var rows: [[Table.Cell]] = []
        var headers: [String] = []
        if case .object(let summary) = cluster["summary"] ?? .null {
            for member in summary {
                guard case .object(let fields) = member.value else { continue }
                let sorted = fields.sorted { $0.key < $1.key }
                if headers.isEmpty { headers = sorted.map { $0.key.uppercased() } }
                rows.append(sorted.map { Table.cell($0.value, humanizeMemory: false) })
            }
        }
        let rule = "------------------------------------"
        let table = rows.isEmpty ? "" : Table.plain(headers: headers, rows: rows, index: true, numbersLeft: true)
        return "\n======== \(title): \(Table.pythonNow(time)) ========\nStats:\n\(rule)\n\(stats.joined(separator: "\n"))\n\n\nTable (group by \(by)):\n\(rule)\n\(table)\n"
    }
}

/// tabulate's "plain" format as Ray's CLI calls it: columns two spaces apart, each at least its
/// header plus 2 wide, numbers right-aligned (or left), other values left, multi-line cells, lines
/// right-trimmed.
enum Table {
    struct Cell {
        var lines: [String]
        var isNumber: Bool
    }

    static func pythonNow(_ time: Date) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss.SSSSSS"
        return formatter.string(from: time)
    }

    /// A value as Ray prints it: dicts as `yaml.dump` (keys sorted, one per line), None as blank,
    /// booleans as True/False.
    static func cell(_ value: JSON, humanizeMemory: Bool) -> Cell {
        switch value {
        case .null: return Cell(lines: [""], isNumber: false)
        case .bool(let b): return Cell(lines: [b ? "True" : "False"], isNumber: false)
        case .int(let i): return Cell(lines: [String(i)], isNumber: true)
        case .double(let d): return Cell(lines: [String(format: "%.3f", d)], isNumber: true)
        case .string(let s): return Cell(lines: s.split(separator: "\n", omittingEmptySubsequences: false).map(String.init), isNumber: false)
        case .array(let items): return Cell(lines: items.isEmpty ? ["[]"] : items.map { "- \(scalar($0))" }, isNumber: false)
        case .object(let members):
            if members.isEmpty { return Cell(lines: ["{}"], isNumber: false) }
            return Cell(lines: members.sorted { $0.key < $1.key }.map { member in
                if humanizeMemory, member.key == "memory" || member.key == "object_store_memory", let bytes = member.value.numberValue {
                    return "\(member.key): \(memory(bytes))"
                }
                return "\(member.key): \(scalar(member.value))"
            }, isNumber: false)
        }
    }

    static func scalar(_ value: JSON) -> String {
        switch value {
        case .double(let d): "\(d)"
        case .string(let s): s.isEmpty ? "''" : (Int(s) != nil || Double(s) != nil ? "'\(s)'" : s)
        case .bool(let b): b ? "true" : "false"
        case .null: "null"
        default: value.text
        }
    }

    /// Ray's Humanify.memory.
    static func memory(_ bytes: Double) -> String {
        let gib = 1_073_741_824.0, mib = 1_048_576.0, kib = 1024.0
        if bytes >= gib { return String(format: "%.3f GiB", bytes / gib) }
        if bytes >= mib { return String(format: "%.3f MiB", bytes / mib) }
        if bytes >= kib { return String(format: "%.3f KiB", bytes / kib) }
        return "\(Int(bytes)) B"
    }

    static func plain(headers: [String], rows: [[Cell]], index: Bool, numbersLeft: Bool) -> String {
        var headers = headers
        var rows = rows
        if index {
            headers.insert("", at: 0)
            rows = rows.enumerated().map { [Cell(lines: [String($0.offset)], isNumber: true)] + $0.element }
        }
        let count = headers.count
        var widths = headers.map { $0.count + 2 }
        var numeric = [Bool](repeating: true, count: count)
        for row in rows {
            for (column, cell) in row.enumerated() where column < count {
                widths[column] = max(widths[column], cell.lines.map(\.count).max() ?? 0)
                if !(cell.isNumber || cell.lines == [""]) { numeric[column] = false }
            }
        }
        for column in 0..<count where rows.allSatisfy({ $0[column].lines == [""] }) { numeric[column] = false }
        func pad(_ text: String, _ column: Int) -> String {
            let space = String(repeating: " ", count: max(0, widths[column] - text.count))
            return numeric[column] && !numbersLeft ? space + text : text + space
        }
        func line(_ cells: [String]) -> String {
            var text = cells.enumerated().map { pad($1, $0) }.joined(separator: "  ")
            while text.last == " " { text.removeLast() }
            return text
        }
        var out = [line(headers)]
        for row in rows {
            let height = row.map(\.lines.count).max() ?? 1
            for lineIndex in 0..<height {
                out.append(line(row.map { lineIndex < $0.lines.count ? $0.lines[lineIndex] : "" }))
            }
        }
        return out.joined(separator: "\n")
    }
}
