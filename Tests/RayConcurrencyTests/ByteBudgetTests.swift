import RayConcurrency
import Synchronization
import Testing

/// The object manager's cap on bytes in flight, as a unit.
@Suite struct ByteBudgetTests {
    final class Order: Sendable {
        let granted = Mutex<[Int]>([])
        func append(_ n: Int) { granted.withLock { $0.append(n) } }
        var values: [Int] { granted.withLock { $0 } }
    }

    /// Waits (up to 5 s) until `count` requests are queued.
    func untilWaiting(_ budget: ByteBudget, _ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while budget.waiting != count {
            guard ContinuousClock.now < deadline else { Issue.record("\(budget.waiting) waiting, not \(count)"); return }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    @Test func waitersAreGrantedInOrderAsBytesComeBack() async throws {
        let budget = ByteBudget(limit: 10)
        try await budget.acquire(6)
        let order = Order()
        let first = Task { try await budget.acquire(6); order.append(1) }
        try await untilWaiting(budget, 1)
        let second = Task { try await budget.acquire(2); order.append(2) }
        try await untilWaiting(budget, 2)
        #expect(order.values.isEmpty, "6 + 6 does not fit in 10, and the 2 waits behind the 6 (first come first served)")
        #expect(budget.inUse == 6, "the 2 would fit, but it is not served before the 6 ahead of it")
        budget.release(6)
        try await first.value
        try await second.value
        // Both are granted at once (6 + 2 fit); which task appends first is the scheduler's choice.
        #expect(order.values.sorted() == [1, 2])
        #expect(budget.inUse == 8)
        #expect(budget.peak == 8)
    }

    @Test func aRequestLargerThanTheBudgetGoesAloneAndNeverHangs() async throws {
        let budget = ByteBudget(limit: 4)
        try await budget.acquire(100)  // nothing else held: granted
        let small = Task { try await budget.acquire(1) }
        try await untilWaiting(budget, 1)
        #expect(budget.inUse == 100, "the small one waits while the large one is out")
        budget.release(100)
        try await small.value
        #expect(budget.inUse == 1)
    }

    @Test func aCancelledWaiterLeavesTheQueueAndLetsOthersThrough() async throws {
        let budget = ByteBudget(limit: 10)
        try await budget.acquire(8)
        let stuck = Task { try await budget.acquire(5) }
        try await untilWaiting(budget, 1)
        let behind = Task { try await budget.acquire(2) }
        try await untilWaiting(budget, 2)
        stuck.cancel()
        await #expect(throws: CancellationError.self) { try await stuck.value }
        try await behind.value  // 8 + 2 fits once the 5 ahead of it is gone
        #expect(budget.inUse == 10)
    }
}
