import RayCommon
import RayScheduling
import Testing

/// The policies on synthetic views: no processes.
@Suite struct SchedulingPolicyTests {
    static func id(_ n: UInt8) -> NodeID { try! NodeID(bytes: [UInt8](repeating: n, count: NodeIDKind.size)) }
    let a = Self.id(1), b = Self.id(2), c = Self.id(3)

    /// Three nodes of `cpus` CPUs, with `used[i]` CPUs taken on the i-th.
    func view(cpus: Double = 4, used: [Double] = [0, 0, 0], extra: [NodeID: [String: Double]] = [:],
              labels: [NodeID: [String: String]] = [:]) -> ClusterView {
        var view = ClusterView()
        for (index, id) in [a, b, c].enumerated() {
            var total = ["CPU": cpus, "memory": 1e9, "object_store_memory": 1e9]
            total.merge(extra[id] ?? [:]) { $1 }
            var available = total
            available["CPU"]! -= used[index]
            view.update(id, NodeResources(total: ResourceSet(total), available: ResourceSet(available), labels: labels[id] ?? [:]))
        }
        return view
    }

    func cpu(_ n: Double) -> SchedulingRequest { SchedulingRequest(resources: ResourceSet(["CPU": n])) }

    @Test func hybridPacksTheLocalNodeUntilTheThresholdThenPicksTheLeastLoaded() {
        var policy = SchedulingPolicy()
        // Below half used, the local node (b) wins even though a and c are emptier.
        #expect(policy.decide(cpu(1), in: view(used: [0, 1, 0]), local: b) == .run(on: b))
        // At 2 of 4 (0.5, not below the threshold) it spreads: the first least-loaded node in order.
        #expect(policy.decide(cpu(1), in: view(used: [2, 2, 0]), local: b) == .run(on: c))
        #expect(policy.decide(cpu(1), in: view(used: [0, 2, 0]), local: b) == .run(on: a))
        // Every node past the threshold: the least loaded.
        #expect(policy.decide(cpu(1), in: view(used: [3, 2, 3]), local: a) == .run(on: b))
    }

    @Test func hybridPacksByPlacingEachTaskInTurn() {
        var policy = SchedulingPolicy()
        var view = view(used: [0, 0, 0])
        var placed: [NodeID] = []
        for _ in 0..<6 {
            guard case .run(let node) = policy.decide(cpu(1), in: view, local: a) else {
                Issue.record("a free CPU was not used")
                return
            }
            placed.append(node)
            var left = view[node]!.available
            left.subtract(ResourceSet(["CPU": 1]))
            view.setAvailable(node, left)
        }
        // Two on the local node (to half of 4), then the empty ones in the cluster's order.
        #expect(placed == [a, a, b, b, c, c])
    }

    @Test func aBusyClusterQueuesOnTheBestFeasibleNodeAndANodeThatCannotEverIsSkipped() {
        var policy = SchedulingPolicy()
        #expect(policy.decide(cpu(1), in: view(used: [4, 4, 4]), local: b) == .queue(on: b))
        #expect(policy.decide(cpu(1), in: view(used: [4, 3, 4]), local: a) == .run(on: b))
        #expect(policy.decide(cpu(8), in: view(cpus: 8, used: [0, 0, 0]).removing(a), local: a) == .run(on: b))
    }

    @Test func customResourcesGoToTheOnlyNodeThatHasThem() {
        var policy = SchedulingPolicy()
        let request = SchedulingRequest(resources: ResourceSet(["CPU": 1, "accel": 1]))
        #expect(policy.decide(request, in: view(extra: [c: ["accel": 1]]), local: a) == .run(on: c))
        guard case .infeasible(let why) = policy.decide(request, in: view(), local: a) else {
            Issue.record("a resource no node has must be infeasible")
            return
        }
        #expect(why.contains("accel: 1"))
    }

    @Test func spreadGoesRoundRobinFromWhereItLeftOff() {
        var policy = SchedulingPolicy()
        let request = SchedulingRequest(resources: ResourceSet(["CPU": 1]), strategy: .spread)
        let placed = (0..<6).map { _ in policy.decide(request, in: view(), local: b) }
        #expect(placed == [a, b, c, a, b, c].map { .run(on: $0) })
        // A full node is passed over; with every node full it queues on the next feasible one.
        #expect(policy.decide(request, in: view(used: [4, 0, 0]), local: b) == .run(on: b))
        #expect(policy.decide(request, in: view(used: [4, 4, 4]), local: b) == .queue(on: c))
    }

    @Test func hardAffinityRunsOnlyThereAndFailsForANodeThatIsGone() {
        var policy = SchedulingPolicy()
        let hard = SchedulingRequest(resources: ResourceSet(["CPU": 1]), strategy: .nodeAffinity(c, soft: false))
        #expect(policy.decide(hard, in: view(), local: a) == .run(on: c))
        #expect(policy.decide(hard, in: view(used: [0, 0, 4]), local: a) == .queue(on: c))
        guard case .unschedulable(let gone) = policy.decide(hard, in: view().removing(c), local: a) else {
            Issue.record("hard affinity to a dead node must fail")
            return
        }
        #expect(gone.contains(c.hex) && gone.contains("doesn't exist any more or is infeasible, and soft=False"))
        let tooBig = SchedulingRequest(resources: ResourceSet(["CPU": 16]), strategy: .nodeAffinity(c, soft: false))
        guard case .unschedulable(let cannot) = policy.decide(tooBig, in: view(), local: a) else {
            Issue.record("hard affinity to a node that cannot hold the request must fail")
            return
        }
        #expect(cannot.contains("CPU: 16"))
    }

    @Test func softAffinityWaitsOnABusyNodeAndFallsBackWhenItIsGoneOrTooSmall() {
        var policy = SchedulingPolicy()
        let soft = SchedulingRequest(resources: ResourceSet(["CPU": 1]), strategy: .nodeAffinity(c, soft: true))
        #expect(policy.decide(soft, in: view(), local: a) == .run(on: c))
        // Busy but alive: it waits there, as Ray's does without _spill_on_unavailable.
        #expect(policy.decide(soft, in: view(used: [0, 0, 4]), local: b) == .queue(on: c))
        #expect(policy.decide(soft, in: view().removing(c), local: a) == .run(on: a))
        let big = SchedulingRequest(resources: ResourceSet(["CPU": 6]), strategy: .nodeAffinity(c, soft: true))
        #expect(policy.decide(big, in: view(extra: [b: ["CPU": 8]]), local: a) == .run(on: b))
    }

    @Test func amongManyNodesHybridPicksOneOfTheBestAtRandomUnlessTheLocalOneIsAsGood() {
        var view = ClusterView()
        let ids = (1...10).map { Self.id(UInt8($0)) }
        for (index, id) in ids.enumerated() {
            // Node i has i of 10 CPUs used (node 1 none, ... node 10 nine): scores 0 up to 0.4 are 0.
            let total = ResourceSet(["CPU": 10])
            view.update(id, NodeResources(total: total, available: ResourceSet(["CPU": 10 - Double(index)])))
        }
        var policy = SchedulingPolicy()
        // Local node 9 (8 of 10 used): the best are the five empty-ish ones; k = max(1, 10 × 0.2) = 2.
        policy.pick = { n in n - 1 }
        #expect(policy.decide(cpu(1), in: view, local: ids[8]) == .run(on: ids[1]))
        policy.pick = { _ in 0 }
        #expect(policy.decide(cpu(1), in: view, local: ids[8]) == .run(on: ids[0]))
        // Local node 3 (2 of 10 used, score 0): as good as the best, so it wins.
        policy.pick = { n in n - 1 }
        #expect(policy.decide(cpu(1), in: view, local: ids[2]) == .run(on: ids[2]))
    }

    @Test func workWithoutGPUsAvoidsGPUNodesWhileOthersAreFree() {
        var policy = SchedulingPolicy()
        let gpuView = view(extra: [a: ["GPU": 1]])
        // The local node has a GPU: CPU-only work goes to a node without one.
        #expect(policy.decide(cpu(1), in: gpuView, local: a) == .run(on: b))
        // Every other node full: the GPU node takes it after all.
        #expect(policy.decide(cpu(1), in: view(used: [0, 4, 4], extra: [a: ["GPU": 1]]), local: a) == .run(on: a))
        let gpu = SchedulingRequest(resources: ResourceSet(["CPU": 1, "GPU": 1]))
        #expect(policy.decide(gpu, in: gpuView, local: b) == .run(on: a))
        var anyNode = SchedulingPolicy(avoidGPUNodes: false)
        #expect(anyNode.decide(cpu(1), in: gpuView, local: a) == .run(on: a))
    }

    @Test func aLabelSelectorPicksTheOnlyMatchingNode() throws {
        var policy = SchedulingPolicy()
        let labels = [a: ["zone": "a"], b: ["zone": "b", "disk": "ssd"], c: ["zone": "b", "disk": "hdd"]]
        let request = SchedulingRequest(resources: ResourceSet(["CPU": 1]), labelSelector: try LabelSelector(["zone": "b", "disk": "!hdd"]))
        #expect(policy.decide(request, in: view(labels: labels), local: a) == .run(on: b))
        #expect(policy.feasibleNodes(request, in: view(labels: labels)) == [b])
        let nowhere = SchedulingRequest(resources: ResourceSet(["CPU": 1]), labelSelector: try LabelSelector(["zone": "in(x,y)"]))
        guard case .infeasible(let why) = policy.decide(nowhere, in: view(labels: labels), local: a) else {
            Issue.record("a selector no node matches must be infeasible")
            return
        }
        #expect(why.contains("zone: in(x,y)"))
    }

    @Test func aNodeThatTakesNoWorkIsPassedOver() {
        var policy = SchedulingPolicy()
        var view = view()
        var draining = view[a]!
        draining.acceptsWork = false
        view.update(a, draining)
        #expect(policy.decide(cpu(1), in: view, local: a) == .run(on: b))
    }

    @Test func criticalUtilizationIsTheMostUsedOfCPUMemoryAndTheStore() {
        let node = NodeResources(
            total: ResourceSet(["CPU": 4, "memory": 100, "object_store_memory": 100, "GPU": 1]),
            available: ResourceSet(["CPU": 3, "memory": 40, "object_store_memory": 90, "GPU": 0]))
        #expect(abs(SchedulingPolicy.criticalUtilization(node) - 0.6) < 1e-9)
    }

    @Test func theViewsVersionGrowsOnlyWithChanges() {
        var view = view()
        let before = view.version
        view.update(a, view[a]!)
        #expect(view.version == before)
        view.setAvailable(a, ResourceSet(["CPU": 1]))
        #expect(view.version == before + 1)
        view.remove(a)
        view.remove(a)
        #expect(view.version == before + 2)
    }
}

extension ClusterView {
    func removing(_ id: NodeID) -> ClusterView {
        var copy = self
        copy.remove(id)
        return copy
    }
}
