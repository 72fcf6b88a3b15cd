/// The timers of one ``ThreadExecutor``: a binary min-heap of deadlines and the actions still
/// wanted. A cancelled timer's heap entry stays until it reaches the top (or the heap is rebuilt
/// when most of it is such entries), so cancelling is a dictionary removal.
struct TimerQueue {
    private struct Entry {
        var deadline: ContinuousClock.Instant
        var id: UInt64
    }

    private var heap: [Entry] = []
    private var actions: [UInt64: @Sendable () -> Void] = [:]
    private var nextID: UInt64 = 0

    /// Timers neither fired nor cancelled.
    var count: Int { actions.count }

    mutating func add(_ deadline: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) -> ScheduledTimer {
        nextID += 1
        actions[nextID] = action
        push(Entry(deadline: deadline, id: nextID))
        return ScheduledTimer(id: nextID)
    }

    mutating func cancel(_ timer: ScheduledTimer) -> Bool {
        guard actions.removeValue(forKey: timer.id) != nil else { return false }
        if heap.count > 64 && actions.count * 4 < heap.count { rebuild() }
        return true
    }

    /// The earliest deadline of a live timer.
    var nextDeadline: ContinuousClock.Instant? {
        mutating get {
            dropCancelledTop()
            return heap.first?.deadline
        }
    }

    /// Appends the actions of timers due at `now` to `due`, earliest first, and forgets them.
    mutating func takeDue(now: ContinuousClock.Instant, into due: inout [@Sendable () -> Void]) {
        while let top = heap.first, top.deadline <= now {
            popTop()
            if let action = actions.removeValue(forKey: top.id) { due.append(action) }
        }
    }

    private mutating func dropCancelledTop() {
        while let top = heap.first, actions[top.id] == nil { popTop() }
    }

    private mutating func rebuild() {
        let live = heap.filter { actions[$0.id] != nil }
        heap.removeAll(keepingCapacity: true)
        for entry in live { push(entry) }
    }

    private static func before(_ a: Entry, _ b: Entry) -> Bool {
        a.deadline == b.deadline ? a.id < b.id : a.deadline < b.deadline
    }

    private mutating func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.before(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func popTop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && Self.before(heap[left], heap[smallest]) { smallest = left }
            if right < heap.count && Self.before(heap[right], heap[smallest]) { smallest = right }
            if smallest == parent { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
