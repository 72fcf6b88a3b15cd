#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RayCommon
import RayConcurrency
import RayProtos
import Synchronization

/// The objects this process knows of: the ones it owns (its puts and what its tasks return) and the
/// ones it borrows. Holds small values inline, shared-memory places of large ones, errors, and for
/// each object its reference counts: `ObjectRef`s alive in this process and tasks in flight that take
/// it as an argument. When both reach zero an owned object is freed (`onFree` deletes shared-memory
/// copies). Waiters (get, wait) are resumed as values arrive, each with a deadline.
final class MemoryStore: Sendable {
    struct Entry {
        var value: ObjectValue?
        var waiters: [Waiter] = []
        var localRefs = 0
        var submittedRefs = 0
        /// Workers that still hold a reference this process lent them (owned objects only).
        var borrowers: Set<WorkerID> = []
        /// Who owns it, if not this process (a borrowed reference).
        var owner: Ray_Rpc_Address?
        /// A borrowed reference its owner was told about: tell it when the borrow ends.
        var borrowReported = false
        /// Owned, and a task of this process makes its value (not a put).
        var madeByTask = false
    }

    private let entries = Mutex<[ObjectID: Entry]>([:])
    private let onFree: @Sendable (ObjectID, ObjectValue) -> Void
    private let onBorrowEnded: @Sendable (ObjectID, Ray_Rpc_Address) -> Void

    /// `onFree`: an owned object nobody references any more. `onBorrowEnded`: a reported borrow ended.
    init(onFree: @escaping @Sendable (ObjectID, ObjectValue) -> Void,
         onBorrowEnded: @escaping @Sendable (ObjectID, Ray_Rpc_Address) -> Void) {
        self.onFree = onFree
        self.onBorrowEnded = onBorrowEnded
    }

    var count: Int { entries.withLock { $0.count } }

    // MARK: references

    /// Registers an object this process will own (its value comes later unless given) with one reference.
    func addOwned(_ id: ObjectID, value: ObjectValue? = nil) {
        entries.withLock { $0[id] = Entry(value: value, localRefs: 1, madeByTask: value == nil) }
    }

    /// What the state API lists of the objects this process references (Ray's ObjectRefInfo), by
    /// object ID, at most `limit` (0: all), and how many there are.
    func references(limit: Int) -> (refs: [Ray_Rpc_ObjectRefInfo], total: Int) {
        let snapshot = entries.withLock { entries in
            entries.map { ($0.key, $0.value.value, $0.value.localRefs, $0.value.submittedRefs, $0.value.owner == nil,
                           $0.value.borrowers.count, $0.value.madeByTask) }
        }
        // The dashboard sorts the rows it gathers; only a cut needs them in order here (by their bytes,
        // the order of their hex, each ID's bytes taken once).
        let kept = limit > 0 && limit < snapshot.count
            ? snapshot.map { ($0.0.bytes, $0) }.sorted { $0.0.lexicographicallyPrecedes($1.0) }.prefix(limit).map(\.1)
            : snapshot
        let refs = kept.map { id, value, local, submitted, owned, borrowers, madeByTask in
            var info = Ray_Rpc_ObjectRefInfo()
            info.objectID = Data(id.bytes)
            info.localRefCount = Int32(local)
            info.submittedTaskRefCount = Int32(submitted)
            info.owned = owned
            info.borrowerCount = Int32(borrowers)
            switch value {
            case .inline(let bytes)?: info.objectSize = Int64(bytes.count)
            case .shared(_, let size)?: info.objectSize = Int64(size)
            case .remote(let location)?: info.objectSize = Int64(location.size)
            case .error?, nil: info.objectSize = -1
            }
            switch (owned && madeByTask, value) {
            case (false, _): info.taskStatus = "NIL"
            case (true, nil): info.taskStatus = "SUBMITTED_TO_WORKER"
            case (true, .error?): info.taskStatus = "FAILED"
            case (true, _?): info.taskStatus = "FINISHED"
            }
            return info
        }
        return (refs, snapshot.count)
    }

    /// One more `ObjectRef` to `id` in this process; a borrowed one registers its owner.
    func addLocalReference(_ id: ObjectID, owner: Ray_Rpc_Address?) {
        entries.withLock { entries in
            if entries[id] == nil { entries[id] = Entry(owner: owner) }
            entries[id]!.localRefs += 1
        }
    }

    func removeLocalReference(_ id: ObjectID) { release(id) { $0.localRefs -= 1 } }

    /// A task in flight takes these objects as arguments: they stay until it ends.
    func addSubmittedReferences(_ ids: [ObjectID]) {
        guard !ids.isEmpty else { return }
        entries.withLock { entries in
            for id in ids { entries[id]?.submittedRefs += 1 }
        }
    }

    func removeSubmittedReferences(_ ids: [ObjectID]) {
        for id in ids { release(id) { $0.submittedRefs -= 1 } }
    }

    /// Workers that hold references to objects this process owns.
    func addBorrower(_ ids: [ObjectID], _ borrower: WorkerID) {
        entries.withLock { entries in
            for id in ids where entries[id] != nil && entries[id]!.owner == nil { entries[id]!.borrowers.insert(borrower) }
        }
    }

    func removeBorrower(_ ids: [ObjectID], _ borrower: WorkerID) {
        for id in ids { release(id) { _ = $0.borrowers.remove(borrower) } }
    }

    /// The borrowed references among `ids` this process still holds, now reported to their owners.
    func reportBorrows(_ ids: [ObjectID]) -> [(ObjectID, Ray_Rpc_Address)] {
        entries.withLock { entries in
            var reported: [(ObjectID, Ray_Rpc_Address)] = []
            for id in Set(ids) {
                guard var entry = entries[id], let owner = entry.owner, entry.localRefs > 0 else { continue }
                entry.borrowReported = true
                entries[id] = entry
                reported.append((id, owner))
            }
            return reported
        }
    }

    private func release(_ id: ObjectID, _ change: (inout Entry) -> Void) {
        let freed = entries.withLock { entries -> Entry? in
            guard var entry = entries[id] else { return nil }
            change(&entry)
            guard entry.localRefs <= 0, entry.submittedRefs <= 0, entry.borrowers.isEmpty else {
                entries[id] = entry
                return nil
            }
            entries[id] = nil
            // Nobody waits on an object nobody references; fail any waiter defensively all the same.
            for waiter in entry.waiters { waiter.cancel() }
            return entry
        }
        guard let freed else { return }
        if let owner = freed.owner {
            if freed.borrowReported { onBorrowEnded(id, owner) }
        } else if let value = freed.value {
            onFree(id, value)
        }
    }

    /// The owner of a borrowed object (nil: this process owns it, or it is unknown).
    func owner(of id: ObjectID) -> Ray_Rpc_Address? { entries.withLock { $0[id]?.owner } }

    func contains(_ id: ObjectID) -> Bool { entries.withLock { $0[id] != nil } }

    // MARK: values

    /// Sets the value of `id`, waking its waiters. An object no longer referenced is freed at once
    /// (its task's result arrived after every `ObjectRef` to it was dropped).
    func set(_ id: ObjectID, _ value: ObjectValue) {
        let (waiters, orphan) = entries.withLock { entries -> ([Waiter], Bool) in
            guard var entry = entries[id] else { return ([], true) }
            guard entry.value == nil else { return ([], false) }
            entry.value = value
            let waiters = entry.waiters
            entry.waiters = []
            entries[id] = entry
            return (waiters, false)
        }
        if orphan { onFree(id, value) }
        for waiter in waiters { waiter.objectReady() }
    }

    func value(_ id: ObjectID) -> ObjectValue? { entries.withLock { $0[id]?.value } }

    /// Replaces the value of an object that has one (a remote value by the local copy pulled here).
    func replace(_ id: ObjectID, _ value: ObjectValue) {
        entries.withLock { entries in
            guard entries[id]?.value != nil else { return }
            entries[id]!.value = value
        }
    }

    /// The node `node` died: each owned object whose copy was there gets the value `survivor` gives
    /// (another copy, or the loss); a borrowed object's remote value is forgotten, so the next `get`
    /// asks its owner again. Returns how many objects changed.
    @discardableResult
    func nodeDied(_ node: Data, survivor: (ObjectID, Ray_Rpc_ObjectLocation) -> ObjectValue) -> Int {
        let affected = entries.withLock { entries -> [(ObjectID, Ray_Rpc_ObjectLocation, Bool)] in
            entries.compactMap { id, entry in
                guard case .remote(let location) = entry.value, location.nodeID == node else { return nil }
                return (id, location, entry.owner == nil)
            }
        }
        for (id, location, owned) in affected {
            let replacement = owned ? survivor(id, location) : nil
            entries.withLock { entries in
                guard case .remote(let current) = entries[id]?.value, current.nodeID == node else { return }
                entries[id]!.value = replacement
            }
        }
        return affected.count
    }

    /// Waits until at least `count` of `ids` have values (or `timeout` passes, or the task is
    /// cancelled); returns which have values.
    func wait(_ ids: [ObjectID], count: Int, timeout: Duration?) async -> Set<ObjectID> {
        let waiter = Waiter()
        let ready = entries.withLock { entries -> Set<ObjectID> in
            var ready = Set<ObjectID>()
            for id in ids where entries[id]?.value != nil || entries[id] == nil { ready.insert(id) }
            let needed = Swift.min(count, ids.count) - ready.count
            if needed > 0 {
                waiter.arm(remaining: needed)
                for id in Set(ids) where !ready.contains(id) { entries[id]!.waiters.append(waiter) }
            }
            return ready
        }
        guard ready.count < Swift.min(count, ids.count) else { return ready }
        await waiter.wait(timeout: timeout)
        return entries.withLock { entries in
            // Drop the waiter from objects that are still pending.
            for id in ids { entries[id]?.waiters.removeAll { $0 === waiter } }
            return Set(ids.filter { entries[$0]?.value != nil || entries[$0] == nil })
        }
    }
}

/// One get or wait: resumed when enough objects arrived, when its deadline passes, or when the
/// waiting task is cancelled, whichever is first.
final class Waiter: Sendable {
    private struct State {
        var remaining = 0
        var continuation: CheckedContinuation<Void, Never>?
        var done = false

        mutating func finish() -> CheckedContinuation<Void, Never>? {
            done = true
            defer { continuation = nil }
            return continuation
        }
    }
    private let state = Mutex(State())

    func arm(remaining: Int) { state.withLock { $0.remaining = remaining } }

    func objectReady() {
        let continuation = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.remaining -= 1
            guard s.remaining <= 0 else { return nil }
            return s.finish()
        }
        continuation?.resume()
    }

    func cancel() { state.withLock { $0.finish() }?.resume() }

    func wait(timeout: Duration?) async {
        // The deadline is a timer of the core worker's thread: it fires while the pool is busy.
        let timer = timeout.map { timeout in ThreadExecutor.coreWorker.schedule(after: timeout) { [weak self] in self?.cancel() } }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { s -> Bool in
                    if s.done || s.remaining <= 0 { return true }
                    s.continuation = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            cancel()
        }
        if let timer { ThreadExecutor.coreWorker.cancel(timer) }
    }
}
