import RayObjectStore
import Testing

@Suite struct ArenaAllocatorTests {
    @Test func allocatesAlignedBlocksUntilFull() {
        var arena = ArenaAllocator(capacity: 1024)
        let a = arena.allocate(1)
        let b = arena.allocate(100)
        #expect(a == 0)
        #expect(b == 64)
        #expect(arena.blockSize(at: 64) == 128)
        #expect(arena.usedBytes == 192)
        #expect(arena.allocate(1024 - 192 + 1) == nil)
        #expect(arena.allocate(1024 - 192) == 192)
        #expect(arena.freeBytes == 0)
        #expect(arena.allocate(0) == nil)
    }

    @Test func freedNeighboursMergeSoLargeBlocksFitAgain() {
        var arena = ArenaAllocator(capacity: 64 * 10)
        let blocks = (0..<10).map { _ in arena.allocate(64)! }
        #expect(arena.allocate(64) == nil)
        // Free every other block: 5 holes of 64, no room for 128.
        for block in blocks where block / 64 % 2 == 0 { let freed = arena.deallocate(block)
            #expect(freed) }
        #expect(arena.largestFreeBlock == 64)
        #expect(arena.allocate(128) == nil)
        // Free the rest: everything merges back into one range.
        for block in blocks where block / 64 % 2 == 1 { let freed = arena.deallocate(block)
            #expect(freed) }
        #expect(arena.largestFreeBlock == 640)
        #expect(arena.usedBytes == 0)
        #expect(arena.allocate(640) == 0)
    }

    @Test func badFreesChangeNothing() {
        var arena = ArenaAllocator(capacity: 256)
        let a = arena.allocate(10)!
        let notABlock = arena.deallocate(a + 1)
        let first = arena.deallocate(a)
        let second = arena.deallocate(a)
        #expect(!notABlock)
        #expect(first)
        #expect(!second)
        #expect(arena.usedBytes == 0)
        #expect(arena.allocate(-1) == nil)
    }

    @Test func randomWorkloadKeepsTheBooksStraight() {
        var arena = ArenaAllocator(capacity: 1 << 20)
        var generator = SystemRandomNumberGenerator()
        var live: [Int: Int] = [:]
        for _ in 0..<5_000 {
            if live.isEmpty || Bool.random(using: &generator) {
                let size = Int.random(in: 1...20_000, using: &generator)
                if let offset = arena.allocate(size) {
                    // No overlap with any live block.
                    let end = offset + arena.blockSize(at: offset)!
                    for (other, otherSize) in live { #expect(end <= other || offset >= other + otherSize) }
                    live[offset] = arena.blockSize(at: offset)!
                }
            } else {
                let offset = live.keys.randomElement(using: &generator)!
                live[offset] = nil
                let freed = arena.deallocate(offset)
                #expect(freed)
            }
            #expect(arena.usedBytes == live.values.reduce(0, +))
        }
        for offset in live.keys { arena.deallocate(offset) }
        #expect(arena.largestFreeBlock == arena.capacity)
    }
}
