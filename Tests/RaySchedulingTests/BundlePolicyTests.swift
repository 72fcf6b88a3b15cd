import RayCommon
import RayScheduling
import Testing

@Suite struct BundlePolicyTests {
    let a = NodeID.random(), b = NodeID.random(), c = NodeID.random()

    func view(_ cpus: [(NodeID, Double, Double)]) -> ClusterView {
        var view = ClusterView()
        for (id, total, free) in cpus {
            view.update(id, NodeResources(total: ResourceSet(["CPU": total]), available: ResourceSet(["CPU": free])))
        }
        return view
    }

    func bundles(_ cpus: Double...) -> [ResourceSet] { cpus.map { ResourceSet(["CPU": $0]) } }

    func placed(_ result: BundlePlacement) -> [Int: NodeID]? {
        if case .placed(let nodes) = result { return nodes }
        return nil
    }

    @Test func strictSpreadPutsEveryBundleOnItsOwnNode() throws {
        let cluster = view([(a, 2, 2), (b, 2, 2), (c, 2, 2)])
        let result = try #require(placed(BundlePolicy.place(bundles(1, 1, 1), strategy: .strictSpread, in: cluster)))
        #expect(Set(result.values) == [a, b, c])
        #expect(result.count == 3)
    }

    @Test func strictSpreadWithMoreBundlesThanNodesIsInfeasible() {
        let cluster = view([(a, 2, 2), (b, 2, 2), (c, 2, 2)])
        guard case .infeasible(let message) = BundlePolicy.place(bundles(1, 1, 1, 1), strategy: .strictSpread, in: cluster) else {
            Issue.record("four bundles on three nodes were placed")
            return
        }
        #expect(message.contains("needs 4 distinct nodes"))
        #expect(message.contains("has 3"))
    }

    @Test func strictPackUsesOneNodeOrNone() throws {
        let cluster = view([(a, 2, 1), (b, 4, 3), (c, 2, 2)])
        let result = try #require(placed(BundlePolicy.place(bundles(1, 1), strategy: .strictPack, in: cluster)))
        #expect(Set(result.values).count == 1)
        // The tightest fit that holds both: c (2 of 2), not b (2 of 3 free); a has 1 free.
        #expect(result[0] == c)
        guard case .noResources = BundlePolicy.place(bundles(2, 1, 1), strategy: .strictPack, in: cluster) else {
            Issue.record("four CPUs on one node with three free")
            return
        }
        guard case .infeasible(let message) = BundlePolicy.place(bundles(3, 3), strategy: .strictPack, in: cluster) else {
            Issue.record("six CPUs on one node of at most four")
            return
        }
        #expect(message.contains("all of"))
    }

    @Test func packFillsOneNodeThenTheNext() throws {
        let cluster = view([(a, 2, 2), (b, 2, 2), (c, 2, 2)])
        let result = try #require(placed(BundlePolicy.place(bundles(1, 1, 1), strategy: .pack, in: cluster)))
        let counts = Dictionary(grouping: result.values, by: { $0 }).mapValues(\.count)
        #expect(counts.values.sorted() == [1, 2])
        // Everything on one node when one can hold it all.
        let whole = try #require(placed(BundlePolicy.place(bundles(1, 1), strategy: .pack, in: cluster)))
        #expect(Set(whole.values).count == 1)
    }

    @Test func spreadUsesDistinctNodesThenSharesThem() throws {
        let cluster = view([(a, 4, 4), (b, 4, 4)])
        let result = try #require(placed(BundlePolicy.place(bundles(1, 1, 1), strategy: .spread, in: cluster)))
        #expect(Set(result.values) == [a, b])
        // SPREAD is best effort: where STRICT_SPREAD is infeasible it still places.
        guard case .infeasible = BundlePolicy.place(bundles(1, 1, 1), strategy: .strictSpread, in: cluster) else {
            Issue.record("three strictly spread bundles on two nodes")
            return
        }
    }

    @Test func busyButLargeEnoughIsWaitingNotInfeasible() {
        let cluster = view([(a, 2, 0), (b, 2, 0)])
        for strategy in PlacementStrategy.allCases {
            guard case .noResources = BundlePolicy.place(bundles(1, 1), strategy: strategy, in: cluster) else {
                Issue.record("\(strategy) on a full cluster was not told to wait")
                continue
            }
        }
    }

    @Test func aBundleNoNodeCouldHoldIsNamed() {
        let cluster = view([(a, 2, 2)])
        guard case .infeasible(let message) = BundlePolicy.place(bundles(1, 8), strategy: .pack, in: cluster) else {
            Issue.record("eight CPUs on a node of two")
            return
        }
        #expect(message.contains("bundle 1 {'CPU': 8.0}"))
    }

    @Test func reschedulingKeepsTheStrategyWithTheBundlesThatSurvived() throws {
        // Bundle 1 lived on a node that died; 0 and 2 are on a and b: STRICT_SPREAD puts 1 on c.
        let cluster = view([(a, 2, 1), (b, 2, 1), (c, 2, 2)])
        let result = try #require(placed(BundlePolicy.place(bundles(1, 1, 1), strategy: .strictSpread, fixed: [0: a, 2: b], in: cluster)))
        #expect(result == [1: c])
        // Without c it cannot be placed again, though a and b have room.
        let small = view([(a, 2, 1), (b, 2, 1)])
        guard case .infeasible = BundlePolicy.place(bundles(1, 1, 1), strategy: .strictSpread, fixed: [0: a, 2: b], in: small) else {
            Issue.record("bundle 1 shared a node with another bundle of its STRICT_SPREAD group")
            return
        }
        // PACK goes back next to its surviving bundles where they have room.
        let packed = try #require(placed(BundlePolicy.place(bundles(1, 1), strategy: .pack, fixed: [0: b], in: view([(a, 4, 4), (b, 2, 1)]))))
        #expect(packed == [1: b])
    }

    @Test func nodesThatTakeNoWorkAreNotUsed() throws {
        var cluster = view([(a, 2, 2), (b, 2, 2)])
        cluster.update(a, NodeResources(total: ResourceSet(["CPU": 2]), acceptsWork: false))
        let result = try #require(placed(BundlePolicy.place(bundles(1), strategy: .strictPack, in: cluster)))
        #expect(result == [0: b])
    }

    @Test func theSameViewGivesTheSameAnswer() {
        let cluster = view([(a, 2, 2), (b, 2, 2), (c, 2, 2)])
        for strategy in PlacementStrategy.allCases {
            let first = BundlePolicy.place(bundles(1, 1), strategy: strategy, in: cluster)
            #expect(BundlePolicy.place(bundles(1, 1), strategy: strategy, in: cluster) == first)
        }
    }

    @Test func bundleResourcesAreNamedAsRayNamesThem() throws {
        let pg = PlacementGroupID.random(job: JobID(number: 1))
        let committed = BundleResources.committed(ResourceSet(["CPU": 2]), index: 1, of: pg)
        #expect(committed.amounts == [
            "CPU_group_1_\(pg.hex)": 2, "CPU_group_\(pg.hex)": 2,
            "bundle_group_1_\(pg.hex)": 1000, "bundle_group_\(pg.hex)": 1000,
        ])
        let request = BundleResources.request(["CPU": 1], index: 1, in: pg)
        #expect(committed.covers(ResourceSet(request)))
        // A request for another bundle, or for no resources in any bundle, is named accordingly.
        #expect(!committed.covers(ResourceSet(BundleResources.request(["CPU": 1], index: 0, in: pg))))
        #expect(BundleResources.request([:], index: -1, in: pg) == ["bundle_group_\(pg.hex)": 0.001])
        #expect(committed.amounts.keys.allSatisfy { BundleResources.belongs($0, to: pg) && BundleResources.isGroupResource($0) })
        #expect(!BundleResources.isGroupResource("CPU"))
        #expect(!BundleResources.belongs("CPU_group_1_\(pg.hex)", to: .random(job: JobID(number: 1))))
    }

    /// Ray's `bundle_label_selector`: each bundle only on nodes whose labels match its selector.
    @Test func bundleLabelSelectorsPickTheNodesEachBundleMayUse() throws {
        var cluster = ClusterView()
        cluster.update(a, NodeResources(total: ResourceSet(["CPU": 4]), labels: ["zone": "east"]))
        cluster.update(b, NodeResources(total: ResourceSet(["CPU": 4]), labels: ["zone": "west", "gpu": "a100"]))
        cluster.update(c, NodeResources(total: ResourceSet(["CPU": 4]), available: ResourceSet(["CPU": 0]), labels: ["zone": "north"]))
        let east = try LabelSelector(["zone": "east"]), west = try LabelSelector(["zone": "west"])
        // PACK would put both on one node; the selectors split them.
        let split = try #require(placed(BundlePolicy.place(bundles(1, 1), strategy: .pack, selectors: [east, west], in: cluster)))
        #expect(split == [0: a, 1: b])
        // Selectors for some bundles only: the rest go anywhere.
        let some = try #require(placed(BundlePolicy.place(bundles(1, 1), strategy: .spread, selectors: [west], in: cluster)))
        #expect(some[0] == b && some[1] == a)
        // STRICT_PACK needs one node that every selector allows.
        guard case .infeasible(let message) = BundlePolicy.place(bundles(1, 1), strategy: .strictPack, selectors: [east, west], in: cluster) else {
            Issue.record("STRICT_PACK placed bundles on a node their selectors do not both allow")
            return
        }
        #expect(message.contains("could ever hold all of"))
        // A node whose labels match but that is busy now: wait for resources, not infeasible.
        let north = try LabelSelector(["zone": "north"])
        guard case .noResources = BundlePolicy.place(bundles(1), strategy: .pack, selectors: [north], in: cluster) else {
            Issue.record("a busy matching node was not a wait for resources")
            return
        }
        // No node has the label at all: infeasible, and the message names the selector.
        let tpu = try LabelSelector(["accelerator": "in(tpu-v4,tpu-v5)"])
        guard case .infeasible(let why) = BundlePolicy.place(bundles(1), strategy: .pack, selectors: [tpu], in: cluster) else {
            Issue.record("a selector no node matches was placed")
            return
        }
        #expect(why.contains("bundle 0") && why.contains("accelerator"), "\(why)")
        #expect(placed(BundlePolicy.place(bundles(1), strategy: .pack, selectors: [try LabelSelector(["gpu": "!a100"])], in: cluster))?[0] == a)
    }
}
