import RayScheduling
import Testing

@Suite struct ResourceSetTests {
    @Test func fractionsAddUpExactly() {
        var available = ResourceSet(["CPU": 1])
        let tenth = ResourceSet(["CPU": 0.1])
        for _ in 0..<10 {
            #expect(available.covers(tenth))
            available.subtract(tenth)
        }
        #expect(available["CPU"] == 0)
        #expect(!available.covers(tenth))
        for _ in 0..<10 { available.add(tenth) }
        #expect(available == ResourceSet(["CPU": 1]))
    }

    @Test func coversEveryNamedResourceAndSaysWhatIsShort() {
        let node = ResourceSet(["CPU": 2, "GPU": 1])
        #expect(node.covers(ResourceSet(["CPU": 2])))
        #expect(!node.covers(ResourceSet(["CPU": 1, "special": 1])))
        #expect(node.shortfall(of: ResourceSet(["CPU": 3, "GPU": 1])) == ["CPU": 2])
        #expect(node.covers(ResourceSet()))
        #expect(ResourceSet(["CPU": 0]).isEmpty, "zero amounts are not kept")
    }
}
