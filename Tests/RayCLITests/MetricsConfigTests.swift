import Foundation
import Testing

extension HeadServices {
    /// The session's Prometheus and Grafana files, as Ray's dashboard writes them: Prometheus reads
    /// the head's discovery file, Grafana provisions the default dashboard, and every metric and
    /// label the dashboard's PromQL names is one our metrics agents serve.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct MetricsConfigTests {
        /// `name{selector}` pairs in a PromQL expression, and the labels it groups by.
        static func selectors(_ expr: String) -> (metrics: [(String, [String])], groupBy: [String]) {
            var metrics: [(String, [String])] = []
            let selector = try! NSRegularExpression(pattern: #"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}"#)
            for match in selector.matches(in: expr, range: NSRange(expr.startIndex..., in: expr)) {
                let name = String(expr[Range(match.range(at: 1), in: expr)!])
                let body = String(expr[Range(match.range(at: 2), in: expr)!])
                let keys = body.split(separator: ",").compactMap { part -> String? in
                    let key = part.prefix { $0 != "=" && $0 != "!" && $0 != "~" }.trimmingCharacters(in: .whitespaces)
                    return key.isEmpty ? nil : key
                }
                metrics.append((name, keys))
            }
            var groups: [String] = []
            let by = try! NSRegularExpression(pattern: #"by \(([^)]*)\)"#)
            for match in by.matches(in: expr, range: NSRange(expr.startIndex..., in: expr)) {
                groups += expr[Range(match.range(at: 1), in: expr)!].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            }
            return (metrics, groups)
        }

        @Test func theSessionsGrafanaDashboardChartsOnlyWhatOurAgentsServe() async throws {
            let cluster = try await DashboardCluster.start()
            do {
                let session = try #require(cluster.sessionDirectory)
                let app = RayCLI.executable.deletingLastPathComponent().appendingPathComponent("ray-integration-app").path
                let id = try await cluster.submitted("\(app) state-hold")
                try await cluster.logsOnceReady(id)
                let targets = try #require((try await cluster.http("GET", "/api/prometheus/sd").json() as? [[String: Any]])?.first?["targets"] as? [String])
                var samples: [(name: String, labels: [String: String], value: Double)] = []
                // Task counts arrive with the GCS's task events: wait until a scrape has them.
                for _ in 0..<100 {
                    samples = []
                    for target in targets { samples += try await RayPython.scrape(target) }
                    if samples.contains(where: { $0.name == "ray_tasks" }) { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                let served = Dictionary(grouping: samples, by: \.name).mapValues { Set($0.flatMap(\.labels.keys)) }

                let dashboardPath = "\(session)/metrics/grafana/dashboards/default_grafana_dashboard.json"
                let dashboard = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dashboardPath))) as? [String: Any])
                #expect(dashboard["uid"] as? String == "rayDefaultDashboard")
                let panels = try #require(dashboard["panels"] as? [[String: Any]])
                #expect(panels.count >= 10)
                var checked = 0
                for panel in panels {
                    for target in panel["targets"] as? [[String: Any]] ?? [] {
                        let expr = try #require(target["expr"] as? String)
                        let (metrics, groups) = Self.selectors(expr)
                        #expect(!metrics.isEmpty, "\(expr)")
                        for (name, keys) in metrics {
                            let labels = try #require(served[name], "\(panel["title"] ?? "") charts \(name), which no agent serves")
                            // instance comes from Prometheus, ray_io_cluster from KubeRay's relabelling.
                            for key in keys where !["instance", "ray_io_cluster"].contains(key) {
                                #expect(labels.contains(key), "\(name) has no label \(key) (\(expr))")
                            }
                            checked += 1
                        }
                        let namedLabels = metrics.reduce(into: Set<String>()) { $0.formUnion(served[$1.0] ?? []) }
                        for group in groups where group != "instance" {
                            #expect(namedLabels.contains(group), "no metric of \(expr) has the label \(group) it groups by")
                        }
                    }
                }
                #expect(checked >= 20)

                // Prometheus's config reads the discovery file the head keeps; Grafana's provisions the
                // dashboard's folder. Parsed with PyYAML, as the real tools would read them.
                let script = """
                import json, sys, yaml, configparser
                prometheus = yaml.safe_load(open(sys.argv[1] + "/metrics/prometheus/prometheus.yml"))
                ini = configparser.ConfigParser(); ini.read(sys.argv[1] + "/metrics/grafana/grafana.ini")
                provisioning = ini["paths"]["provisioning"]
                dashboards = yaml.safe_load(open(provisioning + "/dashboards/default.yml"))
                sources = yaml.safe_load(open(provisioning + "/datasources/default.yml"))
                print(json.dumps([prometheus["scrape_configs"][0]["file_sd_configs"][0]["files"][0],
                                  dashboards["providers"][0]["options"]["path"], sources["datasources"][0]["type"]]))
                """
                let parsed = try await RayPython.run(["-c", script, session], executable: "\(RayPython.venv)/bin/python")
                let values = try #require(try JSONSerialization.jsonObject(with: Data(parsed.output.utf8)) as? [String], "\(parsed.output)")
                #expect(values[0] == "\(session)/prom_metrics_service_discovery.json")
                #expect(values[1] == "\(session)/metrics/grafana/dashboards")
                #expect(values[2] == "prometheus")
                _ = try await cluster.http("POST", "/api/jobs/\(id)/stop")
                _ = try await cluster.waitForEnd(id)
            } catch { Issue.record(error) }
            await cluster.cli.cleanUp()
        }
    }
}
