import Foundation
import RayCommon
import RayProtos
import Synchronization
import Testing

@testable import RayCoreWorker

/// The owner's reference counting and waiting, as a unit (the multi-process tests cover it end to end).
@Suite struct MemoryStoreTests {
    final class Events: Sendable {
        let freed = Mutex<[ObjectID]>([])
        let borrowsEnded = Mutex<[ObjectID]>([])
    }

    func store(_ events: Events) -> MemoryStore {
        MemoryStore(
            onFree: { id, _ in events.freed.withLock { $0.append(id) } },
            onBorrowEnded: { id, _ in events.borrowsEnded.withLock { $0.append(id) } })
    }

    @Test func anOwnedObjectIsFreedWhenItsLastReferenceGoes() {
        let events = Events()
        let store = store(events)
        let id = ObjectID.random()
        store.addOwned(id, value: .inline([1]))
        store.addLocalReference(id, owner: nil)          // a second ObjectRef
        store.addSubmittedReferences([id])               // and a task in flight
        store.removeLocalReference(id)
        store.removeLocalReference(id)
        #expect(events.freed.withLock { $0 }.isEmpty, "the task in flight still holds it")
        store.removeSubmittedReferences([id])
        #expect(events.freed.withLock { $0 } == [id])
        #expect(!store.contains(id))
    }

    @Test func borrowersKeepAnObjectUntilTheyLetGo() {
        let events = Events()
        let store = store(events)
        let id = ObjectID.random()
        let borrower = WorkerID.random()
        store.addOwned(id, value: .inline([1]))
        store.addBorrower([id], borrower)
        store.removeLocalReference(id)
        #expect(events.freed.withLock { $0 }.isEmpty)
        store.removeBorrower([id], WorkerID.random())    // someone else: no effect
        #expect(events.freed.withLock { $0 }.isEmpty)
        store.removeBorrower([id], borrower)
        #expect(events.freed.withLock { $0 } == [id])
    }

    @Test func aReportedBorrowTellsTheOwnerWhenItEnds() {
        let events = Events()
        let store = store(events)
        let id = ObjectID.random()
        var owner = Ray_Rpc_Address()
        owner.workerID = Data(WorkerID.random().bytes)
        store.addLocalReference(id, owner: owner)
        #expect(store.reportBorrows([id]).map(\.0) == [id])
        store.removeLocalReference(id)
        #expect(events.borrowsEnded.withLock { $0 } == [id])
        #expect(events.freed.withLock { $0 }.isEmpty, "a borrower never frees the owner's object")
    }

    @Test func aResultForAnObjectNobodyReferencesIsFreedOnArrival() {
        let events = Events()
        let store = store(events)
        let id = ObjectID.random()
        store.addOwned(id)
        store.removeLocalReference(id)                   // the caller dropped the ref before the result came
        store.set(id, .shared(offset: 0, size: 10))
        #expect(events.freed.withLock { $0 } == [id])
    }

    @Test func waitReturnsWhenEnoughArriveOrAtItsDeadline() async {
        let store = store(Events())
        let ids = (0..<3).map { _ in ObjectID.random() }
        for id in ids { store.addOwned(id) }
        store.set(ids[0], .inline([0]))
        Task {
            try? await Task.sleep(for: .milliseconds(50))
            store.set(ids[2], .inline([2]))
        }
        let two = await store.wait(ids, count: 2, timeout: .seconds(10))
        #expect(two == [ids[0], ids[2]])
        let start = ContinuousClock.now
        let all = await store.wait(ids, count: 3, timeout: .milliseconds(100))
        #expect(all == [ids[0], ids[2]], "ids[1] never came")
        #expect(ContinuousClock.now - start >= .milliseconds(100))
    }

    /// A node's death, as the owner applies it: an object whose copy was there moves to a copy left
    /// on a live node, or fails naming the node; a borrowed one is forgotten (asked of its owner
    /// again); objects elsewhere are untouched.
    @Test func aDeadNodesCopiesLeaveTheOwnersTables() throws {
        let store = store(Events())
        let copies = CopyTable()
        func location(_ node: UInt8, offset: Int64) -> Ray_Rpc_ObjectLocation {
            var location = Ray_Rpc_ObjectLocation()
            location.nodeID = Data(repeating: node, count: 28)
            location.rayletAddress = "127.0.0.\(node):1"
            location.offset = offset
            location.size = 10
            return location
        }
        let dead = Data(repeating: 2, count: 28)
        let survives = ObjectID.random(), lost = ObjectID.random(), elsewhere = ObjectID.random(), borrowed = ObjectID.random()
        store.addOwned(survives, value: .remote(location(2, offset: 0)))
        copies.add(survives, location(2, offset: 0))
        copies.add(survives, location(3, offset: 64))
        store.addOwned(lost, value: .remote(location(2, offset: 128)))
        store.addOwned(elsewhere, value: .remote(location(3, offset: 256)))
        var owner = Ray_Rpc_Address()
        owner.workerID = Data(repeating: 9, count: 28)
        store.addLocalReference(borrowed, owner: owner)
        store.set(borrowed, .remote(location(2, offset: 512)))

        let changed = store.nodeDied(dead) { id, _ in
            guard let copy = copies.takeSurvivor(id, excluding: dead) else {
                return .error(TaskFailure(kind: .objectLost, type: "", message: "lost with node 02", function: ""))
            }
            return .remote(copy)
        }
        copies.dropNode(dead)
        #expect(changed == 3)
        guard case .remote(let moved) = store.value(survives) else { Issue.record("\(String(describing: store.value(survives)))"); return }
        #expect(moved.nodeID == Data(repeating: 3, count: 28) && moved.offset == 64, "the copy on the live node")
        guard case .error(let failure) = store.value(lost) else { Issue.record("\(String(describing: store.value(lost)))"); return }
        #expect(failure.kind == .objectLost)
        guard case .remote(let kept) = store.value(elsewhere) else { Issue.record("untouched"); return }
        #expect(kept.offset == 256)
        #expect(store.value(borrowed) == nil, "a borrower asks the owner again")
        #expect(copies.locations(of: survives).isEmpty, "the survivor became the primary; the dead node's copy is gone")
    }
}
