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
}
