import RayAutoscaling
import RayScheduling
import Testing

@Suite struct ScalingPolicyTests {
    static func config(maxWorkers: Int = 10, speed: Double = 1, cpuMin: Int = 0, cpuMax: Int = 10) -> ClusterConfig {
        ClusterConfig(
            clusterName: "t", maxWorkers: maxWorkers, idleTimeout: .seconds(60), upscalingSpeed: speed,
            nodeTypes: [
                "head": NodeTypeConfig(name: "head", resources: ["CPU": 2], maxWorkers: 0),
                "cpu": NodeTypeConfig(name: "cpu", resources: ["CPU": 4], minWorkers: cpuMin, maxWorkers: cpuMax),
                "accel": NodeTypeConfig(name: "accel", resources: ["CPU": 1, "accel": 1], maxWorkers: 2),
                "gpu": NodeTypeConfig(name: "gpu", resources: ["CPU": 8, "GPU": 1], maxWorkers: 2),
            ],
            headNodeType: "head")
    }

    static let head = NodeSnapshot(id: "head", type: "head", status: .running, total: ResourceSet(["CPU": 2]),
                                   available: ResourceSet(["CPU": 2]), idle: .seconds(1000), isHead: true)

    static func worker(_ id: String, _ type: String, _ resources: [String: Double], free: [String: Double]? = nil,
                       idle: Duration? = nil, status: NodeSnapshot.Status = .running) -> NodeSnapshot {
        NodeSnapshot(id: id, type: type, status: status, total: ResourceSet(resources), available: ResourceSet(free ?? resources), idle: idle)
    }

    @Test func workNoNodeHasLaunchesTheTypeThatHasIt() {
        let decision = ScalingPolicy.decide(config: Self.config(), nodes: [Self.head],
                                            demand: Demand(shapes: [ResourceSet(["accel": 1]): 1]))
        #expect(decision.launch == ["accel": 1])
        #expect(decision.infeasible.isEmpty)
    }

    @Test func workThatFitsWhatIsFreeLaunchesNothing() {
        let decision = ScalingPolicy.decide(config: Self.config(), nodes: [Self.head],
                                            demand: Demand(shapes: [ResourceSet(["CPU": 1]): 2]))
        #expect(decision.launch.isEmpty)
    }

    @Test func pendingNodesCountAsCapacityOnItsWay() {
        let pending = Self.worker("p", "accel", ["CPU": 1, "accel": 1], status: .pending)
        let decision = ScalingPolicy.decide(config: Self.config(), nodes: [Self.head, pending],
                                            demand: Demand(shapes: [ResourceSet(["accel": 1]): 1]))
        #expect(decision.launch.isEmpty, "the pending accel node will take it")
    }

    @Test func binPacksAndNeverWastesAGPUNodeOnCPUWork() {
        let busyHead = NodeSnapshot(id: "head", type: "head", status: .running, total: ResourceSet(["CPU": 2]),
                                    available: ResourceSet(), isHead: true)
        let decision = ScalingPolicy.decide(config: Self.config(), nodes: [busyHead],
                                            demand: Demand(shapes: [ResourceSet(["CPU": 1]): 10]))
        // 10 CPUs on 4-CPU nodes: 3 nodes (the gpu type, 8 CPUs, is not for CPU-only work).
        #expect(decision.launch == ["cpu": 3])
        let gpu = ScalingPolicy.decide(config: Self.config(), nodes: [busyHead], demand: Demand(shapes: [ResourceSet(["GPU": 1]): 1]))
        #expect(gpu.launch == ["gpu": 1])
    }

    @Test func maxWorkersBoundsABurst() {
        let busyHead = NodeSnapshot(id: "head", type: "head", status: .running, total: ResourceSet(["CPU": 2]),
                                    available: ResourceSet(), isHead: true)
        let decision = ScalingPolicy.decide(config: Self.config(maxWorkers: 3), nodes: [busyHead],
                                            demand: Demand(shapes: [ResourceSet(["CPU": 1]): 50]))
        #expect(decision.launch.values.reduce(0, +) == 3)
        #expect(decision.waiting > 0)
        // With three workers up (busy), nothing more.
        let three = (1...3).map { Self.worker("w\($0)", "cpu", ["CPU": 4], free: [:]) }
        let next = ScalingPolicy.decide(config: Self.config(maxWorkers: 3), nodes: [busyHead] + three,
                                        demand: Demand(shapes: [ResourceSet(["CPU": 1]): 38]))
        #expect(next.launch.isEmpty)
        // A type's own max_workers too.
        let typed = ScalingPolicy.decide(config: Self.config(cpuMax: 2), nodes: [busyHead],
                                         demand: Demand(shapes: [ResourceSet(["CPU": 1]): 50]))
        #expect(typed.launch["cpu"] == 2)
    }

    @Test func upscalingSpeedLimitsAStep() {
        let busyHead = NodeSnapshot(id: "head", type: "head", status: .running, total: ResourceSet(["CPU": 2]),
                                    available: ResourceSet(), isHead: true)
        let demand = Demand(shapes: [ResourceSet(["CPU": 4]): 40])
        // None running: at most 5 pending, whatever their types (Ray's initial allowance).
        #expect(ScalingPolicy.decide(config: Self.config(maxWorkers: 100, cpuMax: 100), nodes: [busyHead], demand: demand).launch == ["cpu": 5])
        // Eight running at speed 1.5: 12 may be pending.
        let running = (1...8).map { Self.worker("w\($0)", "cpu", ["CPU": 4], free: [:]) }
        let step = ScalingPolicy.decide(config: Self.config(maxWorkers: 100, speed: 1.5, cpuMax: 100), nodes: [busyHead] + running, demand: demand)
        #expect(step.launch == ["cpu": 12])
    }

    @Test func minWorkersStartWithTheHead() {
        let decision = ScalingPolicy.decide(config: Self.config(cpuMin: 2), nodes: [Self.head], demand: Demand())
        #expect(decision.launch == ["cpu": 2])
    }

    @Test func requestResourcesScalesWithNoWork() {
        // 8 CPUs at once: the head's 2 and two 4-CPU nodes (it is capacity, not free resources).
        let decision = ScalingPolicy.decide(config: Self.config(), nodes: [Self.head],
                                            demand: Demand(constraints: Array(repeating: ResourceSet(["CPU": 1]), count: 8)))
        #expect(decision.launch == ["cpu": 2])
        // Nodes a request counts on are not ended when idle.
        let idle = Self.worker("w1", "cpu", ["CPU": 4], idle: .seconds(600))
        let kept = ScalingPolicy.decide(config: Self.config(), nodes: [Self.head, idle],
                                        demand: Demand(constraints: [ResourceSet(["CPU": 4])]))
        #expect(kept.terminate.isEmpty)
        #expect(kept.launch.isEmpty)
    }

    @Test func placementGroupsByStrategy() {
        let bundle = ResourceSet(["CPU": 1])
        let busyHead = NodeSnapshot(id: "head", type: "head", status: .running, total: ResourceSet(["CPU": 2]),
                                    available: ResourceSet(), isHead: true)
        let spread = ScalingPolicy.decide(config: Self.config(), nodes: [busyHead],
                                          demand: Demand(gangs: [GangDemand(id: "g", bundles: [bundle, bundle, bundle], strategy: .strictSpread)]))
        #expect(spread.launch.values.reduce(0, +) == 3, "STRICT_SPREAD: a node per bundle")
        let pack = ScalingPolicy.decide(config: Self.config(), nodes: [busyHead],
                                        demand: Demand(gangs: [GangDemand(id: "g", bundles: [bundle, bundle, bundle], strategy: .strictPack)]))
        #expect(pack.launch == ["cpu": 1], "STRICT_PACK: one node holds all three")
        // A group bigger than any node with STRICT_PACK can never be placed: reported, nothing launched.
        let huge = ScalingPolicy.decide(config: Self.config(), nodes: [busyHead],
                                        demand: Demand(gangs: [GangDemand(id: "big", bundles: Array(repeating: ResourceSet(["CPU": 4]), count: 3),
                                                                          strategy: .strictPack)]))
        #expect(huge.launch.isEmpty)
        #expect(huge.infeasibleGangs == ["big"])
        // All or nothing: STRICT_SPREAD of 3 accel bundles with accel max_workers 2 launches none.
        let limited = ScalingPolicy.decide(config: Self.config(), nodes: [busyHead],
                                           demand: Demand(gangs: [GangDemand(id: "a", bundles: Array(repeating: ResourceSet(["accel": 1]), count: 3),
                                                                             strategy: .strictSpread)]))
        #expect(limited.launch.isEmpty)
    }

    @Test func shapesNoTypeHoldsAreInfeasible() {
        let decision = ScalingPolicy.decide(config: Self.config(), nodes: [Self.head], demand: Demand(shapes: [ResourceSet(["TPU": 1]): 3]))
        #expect(decision.launch.isEmpty)
        #expect(decision.infeasible == [ResourceSet(["TPU": 1])])
    }

    @Test func idleNodesEndAfterTheTimeoutButNotBelowMinOrWithWorkOrBundles() {
        let config = Self.config(cpuMin: 1)
        let nodes = [
            Self.head,
            Self.worker("old", "cpu", ["CPU": 4], idle: .seconds(120)),
            Self.worker("older", "cpu", ["CPU": 4], idle: .seconds(300)),
            Self.worker("young", "cpu", ["CPU": 4], idle: .seconds(10)),
            Self.worker("busy", "cpu", ["CPU": 4], free: ["CPU": 3]),
            Self.worker("bundle", "accel", ["CPU": 1, "accel": 1, "CPU_group_0_" + String(repeating: "ab", count: 18): 1], idle: .seconds(999)),
        ]
        let decision = ScalingPolicy.decide(config: config, nodes: nodes, demand: Demand())
        // Four cpu workers, min 1: both past the timeout go (longest idle first); young and busy stay.
        #expect(decision.terminate.map(\.id) == ["older", "old"])
        #expect(decision.launch.isEmpty)
        // min_workers 3: only one may go.
        let keep = ScalingPolicy.decide(config: Self.config(cpuMin: 3), nodes: nodes, demand: Demand())
        #expect(keep.terminate.map(\.id) == ["older"])
        // An idle node that queued work fits is kept.
        let wanted = ScalingPolicy.decide(config: config, nodes: nodes, demand: Demand(shapes: [ResourceSet(["CPU": 4]): 2]))
        #expect(wanted.terminate.isEmpty, "both idle nodes take the queued work: \(wanted.terminate)")
        #expect(!ScalingPolicy.decide(config: config, nodes: nodes, demand: Demand()).terminate.contains { $0.id == "head" })
    }

    @Test func backoffDoublesAndBlocksTheType() {
        var backoff = LaunchBackoff(base: .seconds(5), maximum: .seconds(30))
        let start = ContinuousClock.now
        backoff.failed("accel", reason: "no", at: start)
        #expect(backoff.blocked(at: start + .seconds(4)) == ["accel"])
        #expect(backoff.blocked(at: start + .seconds(6)).isEmpty)
        backoff.failed("accel", reason: "no", at: start + .seconds(6))
        #expect(backoff.retryAt("accel") == start + .seconds(16))
        for i in 0..<10 { backoff.failed("accel", reason: "no", at: start + .seconds(100 + i)) }
        #expect(backoff.retryAt("accel") == start + .seconds(109) + .seconds(30), "capped at the maximum")
        backoff.succeeded("accel")
        #expect(backoff.blocked(at: start + .seconds(110)).isEmpty)
        #expect(backoff.recent(at: start + .seconds(110)).map(\.type) == ["accel"], "still listed among recent failures")
        // A blocked type is not launched.
        let decision = ScalingPolicy.decide(config: Self.config(), nodes: [Self.head],
                                            demand: Demand(shapes: [ResourceSet(["accel": 1]): 1]), blocked: ["accel"])
        #expect(decision.launch.isEmpty)
        #expect(decision.waiting == 1)
    }
}
