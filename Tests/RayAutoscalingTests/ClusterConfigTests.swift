import Foundation
import RayAutoscaling
import RayYAML
import Testing

@Suite struct ClusterConfigTests {
    static let example = """
        cluster_name: local-test
        max_workers: 3
        idle_timeout_minutes: 0.05
        upscaling_speed: 2
        provider:
          type: local
        head_node_type: head
        available_node_types:
          head:
            resources: {CPU: 2}
            max_workers: 0
          accel:
            resources: {CPU: 1, accel: 1}
            labels: {kind: accel}
            min_workers: 0
            max_workers: 2
          cpu:
            resources: {CPU: 1}
            min_workers: 1
        setup_commands: []
        """

    static func parse(_ yaml: String) throws -> ClusterConfig { try ClusterConfig.parse(json: try YAML.toJSON(yaml)) }

    static func problem(_ yaml: String) -> String {
        do {
            _ = try parse(yaml)
            return "parsed"
        } catch {
            return "\(error)"
        }
    }

    @Test func readsRaysSchema() throws {
        let config = try Self.parse(Self.example)
        #expect(config.clusterName == "local-test")
        #expect(config.maxWorkers == 3)
        #expect(config.idleTimeout == .seconds(3))
        #expect(config.upscalingSpeed == 2)
        #expect(config.headNodeType == "head")
        #expect(config.providerType == "local")
        #expect(config.nodeTypes["accel"] == NodeTypeConfig(name: "accel", resources: ["CPU": 1, "accel": 1], labels: ["kind": "accel"],
                                                             minWorkers: 0, maxWorkers: 2))
        // A type without max_workers takes the cluster's.
        #expect(config.nodeTypes["cpu"]?.maxWorkers == 3)
        #expect(config.nodeTypes["cpu"]?.minWorkers == 1)
    }

    @Test func raysDefaults() throws {
        let config = try Self.parse("""
            provider: {type: fake_multinode}
            head_node_type: h
            available_node_types: {h: {resources: {CPU: 1}}}
            """)
        #expect(config.maxWorkers == 2)
        #expect(config.idleTimeout == .seconds(300))
        #expect(config.upscalingSpeed == 1)
    }

    @Test func yamlThatDoesNotParseNamesLineAndColumn() {
        let message = Self.problem("cluster_name: x\navailable_node_types:\n  head: {resources: {CPU: 1}\n")
        #expect(message.contains("line 3") || message.contains("line 4"), "\(message)")
        #expect(message.contains("column"), "\(message)")
    }

    @Test func mistakesNameTheFieldPath() {
        let base = Self.example
        #expect(Self.problem(base.replacingOccurrences(of: "head_node_type: head", with: "head_node_type: gpu"))
            .contains("head_node_type: `gpu` is not one of available_node_types (accel, cpu, head)"))
        #expect(Self.problem(base.replacingOccurrences(of: "min_workers: 1", with: "min_workers: 5\n    max_workers: 2"))
            .contains("available_node_types.cpu.min_workers: min_workers (5) is above max_workers (2)"))
        #expect(Self.problem(base.replacingOccurrences(of: "resources: {CPU: 1, accel: 1}", with: "resources: {CPU: 1, accel: -1}"))
            .contains("available_node_types.accel.resources.accel: cannot be negative"))
        #expect(Self.problem(base.replacingOccurrences(of: "resources: {CPU: 1, accel: 1}", with: "resources: {CPU: one}"))
            .contains("available_node_types.accel.resources.CPU: must be a number, got a string"))
        #expect(Self.problem(base.replacingOccurrences(of: "max_workers: 3", with: "max_workers: true"))
            .contains("max_workers: must be a number, got a boolean"))
        #expect(Self.problem(base.replacingOccurrences(of: "max_workers: 3", with: "max_workers: 2.5"))
            .contains("max_workers: must be a whole number"))
        #expect(Self.problem(base.replacingOccurrences(of: "type: local", with: "type: aws"))
            .contains("provider.type: `aws` is not a provider"))
        #expect(Self.problem(base.replacingOccurrences(of: "upscaling_speed: 2", with: "upscaling_sped: 2"))
            .contains("upscaling_sped: unknown key"))
        #expect(Self.problem(base.replacingOccurrences(of: "labels: {kind: accel}", with: "lables: {kind: accel}"))
            .contains("available_node_types.accel.lables: unknown key"))
        #expect(Self.problem(base.replacingOccurrences(of: "labels: {kind: accel}", with: "labels: {kind: 3}"))
            .contains("available_node_types.accel.labels.kind: must be a string"))
        #expect(Self.problem("- a\n- b\n").contains("must be a mapping"))
        #expect(Self.problem("provider: {type: local}\nhead_node_type: h\n").contains("available_node_types: missing"))
    }
}
