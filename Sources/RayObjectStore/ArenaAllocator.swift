/// A first-fit allocator over a fixed range of bytes (the shared-memory arena), with free blocks kept
/// sorted by offset and merged with their neighbours when freed. Pure bookkeeping: it never touches
/// the memory, so its policy is testable on its own.
public struct ArenaAllocator: Sendable {
    /// Every block starts at a multiple of this (cache-line aligned, as Ray's plasma store does).
    public static let alignment = 64

    public let capacity: Int
    /// Free ranges, sorted by offset, never adjacent (adjacent ones are merged).
    private(set) var free: [(offset: Int, size: Int)]
    private var allocated: [Int: Int] = [:]  // offset -> size
    public private(set) var usedBytes = 0

    public init(capacity: Int) {
        let usable = capacity - capacity % Self.alignment
        self.capacity = usable
        self.free = usable > 0 ? [(0, usable)] : []
    }

    public var freeBytes: Int { capacity - usedBytes }
    public var largestFreeBlock: Int { free.map(\.size).max() ?? 0 }
    public var allocationCount: Int { allocated.count }

    static func rounded(_ size: Int) -> Int {
        max(Self.alignment, (size + Self.alignment - 1) / Self.alignment * Self.alignment)
    }

    /// The offset of a new block of at least `size` bytes, or nil when no free range is big enough.
    public mutating func allocate(_ size: Int) -> Int? {
        guard size >= 0 else { return nil }
        let needed = Self.rounded(size)
        guard let index = free.firstIndex(where: { $0.size >= needed }) else { return nil }
        let block = free[index]
        if block.size == needed {
            free.remove(at: index)
        } else {
            free[index] = (block.offset + needed, block.size - needed)
        }
        allocated[block.offset] = needed
        usedBytes += needed
        return block.offset
    }

    /// Returns a block; false if `offset` is not the start of an allocated block (nothing changes).
    @discardableResult
    public mutating func deallocate(_ offset: Int) -> Bool {
        guard let size = allocated.removeValue(forKey: offset) else { return false }
        usedBytes -= size
        // Insert in order, then merge with the neighbours.
        var low = 0
        var high = free.count
        while low < high {
            let mid = (low + high) / 2
            if free[mid].offset < offset { low = mid + 1 } else { high = mid }
        }
        free.insert((offset, size), at: low)
        if low + 1 < free.count, free[low].offset + free[low].size == free[low + 1].offset {
            free[low].size += free[low + 1].size
            free.remove(at: low + 1)
        }
        if low > 0, free[low - 1].offset + free[low - 1].size == free[low].offset {
            free[low - 1].size += free[low].size
            free.remove(at: low)
        }
        return true
    }

    /// The size reserved for the block at `offset` (rounded up), if allocated.
    public func blockSize(at offset: Int) -> Int? { allocated[offset] }
}
