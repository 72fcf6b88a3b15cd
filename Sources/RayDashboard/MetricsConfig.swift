import Foundation
import RayCommon

/// What Ray's dashboard writes into the session for Prometheus and Grafana
/// (`<session>/metrics/prometheus/prometheus.yml`, `<session>/metrics/grafana/…`), so the commands
/// Ray's docs give (`prometheus --config.file=…`, `grafana-server --config …/grafana.ini web`)
/// chart this cluster. The default dashboard has Ray's panels (Ray's PromQL, uid
/// `rayDefaultDashboard`) for the metrics our agents export; panels whose metrics we do not export
/// (GPU, disk, network, per-component, autoscaler) are left out rather than left empty.
public enum MetricsConfig {
    /// Ray's global filter, on every selector.
    static let global = #"SessionName=~"$SessionName",ray_io_cluster=~"$Cluster""#
    static let instance = #"instance=~"$Instance""#
    static let nodeType = #"RayNodeType=~"$RayNodeType""#

    public struct Target: Sendable {
        public let expr: String
        public let legend: String
    }

    public struct Panel: Sendable {
        public let title: String
        public let description: String
        public let unit: String
        public let targets: [Target]
    }

    /// The default dashboard's panels, in Ray's order.
    public static var panels: [Panel] {
        let gf = global, i = instance, t = nodeType
        func panel(_ title: String, _ description: String, _ unit: String, _ targets: [(String, String)]) -> Panel {
            Panel(title: title, description: description, unit: unit, targets: targets.map { Target(expr: $0.0, legend: $0.1) })
        }
        return [
            panel("Cluster Utilization", "Aggregated utilization of all physical resources (CPU, memory, object store) of the cluster.", "percent", [
                ("avg(ray_node_cpu_utilization{\(i),\(gf)})", "CPU (physical)"),
                ("sum(ray_node_mem_used{\(i),\(gf)}) / on() (sum(ray_node_mem_total{\(i),\(gf)})) * 100", "Memory (RAM)"),
                ("sum(ray_object_store_memory{\(i),\(gf)}) / on() sum(ray_resources{Name=\"object_store_memory\",\(i),\(gf)}) * 100", "Object Store Memory"),
            ]),
            panel("All Tasks by State", "Current count of tasks, grouped by scheduler state.", "tasks", [
                ("sum(max_over_time(ray_tasks{IsRetry=\"0\",State=~\"FINISHED|FAILED\",\(i),\(gf)}[14d])) by (State) or clamp_min(sum(ray_tasks{IsRetry=\"0\",State!~\"FINISHED|FAILED\",\(i),\(gf)}) by (State), 0)", "{{State}}"),
                ("sum(max_over_time(ray_tasks{IsRetry!=\"0\",State=~\"FINISHED|FAILED\",\(i),\(gf)}[14d])) by (State) or clamp_min(sum(ray_tasks{IsRetry!=\"0\",State!~\"FINISHED|FAILED\",\(i),\(gf)}) by (State), 0)", "{{State}} (retry)"),
            ]),
            panel("Active Tasks by Name", "Current count of active tasks (not finished or failed), grouped by name.", "tasks", [
                ("clamp_min(sum(ray_tasks{IsRetry=\"0\",State!~\"FINISHED|FAILED\",\(i),\(gf)}) by (Name), 0)", "{{Name}}"),
                ("clamp_min(sum(ray_tasks{IsRetry!=\"0\",State!~\"FINISHED|FAILED\",\(i),\(gf)}) by (Name), 0)", "{{Name}} (retry)"),
            ]),
            panel("Running Tasks by Name", "Current count of running tasks, grouped by name.", "tasks", [
                ("clamp_min(sum(ray_tasks{IsRetry=\"0\",State=~\"RUNNING*\",\(i),\(gf)}) by (Name), 0)", "{{Name}}"),
                ("clamp_min(sum(ray_tasks{IsRetry!=\"0\",State=~\"RUNNING*\",\(i),\(gf)}) by (Name), 0)", "{{Name}} (retry)"),
            ]),
            panel("Running Tasks by Node", "Current count of running tasks, grouped by node.", "tasks", [
                ("clamp_min(sum(ray_tasks{State=~\"RUNNING*\",Source=\"executor\",\(i),\(gf)}) by (instance), 0)", "{{instance}}"),
            ]),
            panel("All Actors by State", "Current count of actors, grouped by lifecycle state.", "actors", [
                ("sum(ray_actors{Source=\"gcs\",\(gf)}) by (State)", "{{State}}"),
            ]),
            panel("All Placement Groups by State", "Current count of placement groups, grouped by state.", "placement groups", [
                ("sum(ray_placement_groups{\(gf)}) by (State)", "{{State}}"),
            ]),
            panel("Object Store Memory by Location", "Object store memory usage by location.", "bytes", [
                ("sum(ray_object_store_memory{\(i),\(gf)}) by (Location)", "{{Location}}"),
                ("sum(ray_resources{Name=\"object_store_memory\",\(i),\(gf)})", "MAX"),
            ]),
            panel("Logical CPUs Usage", "Logical CPU usage of Ray, from the resources tasks and actors reserve.", "cores", [
                ("sum(ray_resources{Name=\"CPU\",State=\"USED\",\(i),\(gf)}) by (instance)", "CPU Usage: {{instance}}"),
                ("sum(ray_resources{Name=\"CPU\",\(i),\(gf)})", "MAX"),
            ]),
            panel("Logical Memory Usage", "Logical memory usage of Ray, from the memory tasks and actors reserve.", "bytes", [
                ("sum(ray_resources{Name=\"memory\",State=\"USED\",\(i),\(gf)}) by (instance)", "Memory Usage: {{instance}}"),
                ("sum(ray_resources{Name=\"memory\",\(i),\(gf)})", "MAX"),
            ]),
            panel("Node CPU (hardware utilization)", "The physical (hardware) CPU usage of each node.", "cores", [
                ("sum(ray_node_cpu_utilization{\(i), \(t), \(gf)} * ray_node_cpu_count{\(i), \(t),\(gf)} / 100) by (instance, RayNodeType)", "CPU Usage: {{instance}} ({{RayNodeType}})"),
                ("sum(ray_node_cpu_count{\(i), \(t), \(gf)})", "MAX"),
            ]),
            panel("Node Memory (heap + object store)", "The physical (hardware) memory usage of each node.", "bytes", [
                ("sum(ray_node_mem_used{\(i), \(t), \(gf)}) by (instance, RayNodeType)", "Memory Used: {{instance}} ({{RayNodeType}})"),
                ("sum(ray_node_mem_total{\(i), \(t), \(gf)})", "MAX"),
            ]),
            panel("Node Count", "Alive nodes in the cluster.", "nodes", [
                ("sum(ray_cluster_active_nodes{\(gf)}) by (node_type)", "Active Nodes: {{node_type}}"),
            ]),
        ]
    }

    /// The Grafana dashboard JSON (uid `rayDefaultDashboard`, as the one Ray generates).
    public static func defaultDashboard() -> JSON {
        let panelsJSON: [JSON] = panels.enumerated().map { index, panel in
            .object([
                "id": .int(Int64(index + 1)),
                "type": .string("timeseries"),
                "title": .string(panel.title),
                "description": .string(panel.description),
                "datasource": .object(["type": .string("prometheus"), "uid": .string("${datasource}")]),
                "gridPos": .object(["h": .int(8), "w": .int(12), "x": .int(Int64(index % 2 * 12)), "y": .int(Int64(index / 2 * 8))]),
                "fieldConfig": .object(["defaults": .object(["unit": .string(panel.unit)]), "overrides": .array([])]),
                "targets": .array(panel.targets.enumerated().map { number, target in
                    .object(["refId": .string(String(UnicodeScalar(UInt8(65 + number)))), "expr": .string(target.expr),
                             "legendFormat": .string(target.legend)])
                }),
            ])
        }
        func variable(_ name: String, label: String) -> JSON {
            .object([
                "name": .string(name), "label": .string(label), "type": .string("query"),
                "datasource": .object(["type": .string("prometheus"), "uid": .string("${datasource}")]),
                "query": .string(name == "Instance"
                    ? "label_values(ray_node_cpu_count{SessionName=~\"$SessionName\",ray_io_cluster=~\"$Cluster\"}, instance)"
                    : "label_values(ray_node_cpu_count{}, \(name == "Cluster" ? "ray_io_cluster" : name))"),
                "includeAll": .bool(true), "multi": .bool(name != "SessionName"), "allValue": .string(".*"),
                "refresh": .int(2), "current": .object([:]),
            ])
        }
        return .object([
            "uid": .string("rayDefaultDashboard"),
            "title": .string("Default Dashboard"),
            "tags": .array([.string("rayVersion:\(Dashboard.rayVersion)"), .string("swift-ray")]),
            "schemaVersion": .int(27),
            "editable": .bool(true),
            "refresh": .string("5s"),
            "time": .object(["from": .string("now-30m"), "to": .string("now")]),
            "templating": .object(["list": .array([
                .object(["name": .string("datasource"), "label": .string("Data Source"), "type": .string("datasource"),
                         "query": .string("prometheus"), "current": .object([:])]),
                variable("SessionName", label: "SessionName"), variable("Instance", label: "Instance"),
                variable("Cluster", label: "Cluster"),
                .object(["name": .string("RayNodeType"), "label": .string("Node Type"), "type": .string("custom"),
                         "query": .string("head,worker"), "includeAll": .bool(true), "multi": .bool(true),
                         "allValue": .string(".+"), "current": .object([:])]),
            ])]),
            "panels": .array(panelsJSON),
        ])
    }

    /// Writes Ray's metrics folder into `session`: Prometheus's config (scraping every node through
    /// the head's service-discovery file) and Grafana's (provisioning a Prometheus data source at
    /// `prometheusHost` and the default dashboard).
    public static func write(session: URL, prometheusHost: String = "http://localhost:9090") throws {
        let metrics = session.appendingPathComponent("metrics")
        let grafana = metrics.appendingPathComponent("grafana")
        let provisioning = grafana.appendingPathComponent("provisioning")
        let dashboards = grafana.appendingPathComponent("dashboards")
        let prometheus = metrics.appendingPathComponent("prometheus")
        for folder in [provisioning.appendingPathComponent("datasources"), provisioning.appendingPathComponent("dashboards"), dashboards, prometheus] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        func put(_ text: String, _ url: URL) throws { try Data(text.utf8).write(to: url, options: .atomic) }
        try put("""
            [security]
            allow_embedding = true

            [auth.anonymous]
            enabled = true
            org_name = Main Org.
            org_role = Viewer

            [paths]
            provisioning = \(provisioning.path)

            """, grafana.appendingPathComponent("grafana.ini"))
        try put("""
            apiVersion: 1
            datasources:
            - name: Prometheus
              url: \(prometheusHost)
              type: prometheus
              isDefault: true
              access: proxy

            """, provisioning.appendingPathComponent("datasources/default.yml"))
        try put("""
            apiVersion: 1

            providers:
              - name: Ray
                folder: Ray
                type: file
                options:
                  path: \(dashboards.path)

            """, provisioning.appendingPathComponent("dashboards/default.yml"))
        try put(defaultDashboard().text, dashboards.appendingPathComponent("default_grafana_dashboard.json"))
        try put("""
            # Ray's layout: scrape every node's metrics agent, as the head's service-discovery file lists them.
            global:
              scrape_interval: 10s
              evaluation_interval: 10s

            scrape_configs:
            - job_name: 'ray'
              file_sd_configs:
              - files:
                - '\(session.appendingPathComponent("prom_metrics_service_discovery.json").path)'

            """, prometheus.appendingPathComponent("prometheus.yml"))
    }
}
