@testable import RecurdStreams
import RecurdNumerics
import Testing

@Suite struct StreamKeyIndexTests {
    /// Random inserts and removals against a dictionary, in a table small enough that probe runs
    /// overlap and wrap around, so backward-shift deletion is exercised.
    @Test func matchesADictionaryUnderChurn() {
        let capacity = 64
        var index = StreamKeyIndex(capacity: capacity)
        var reference: [[UInt8]: Int] = [:]
        var freeSlots = Array(0..<capacity)
        var rng = SeededGenerator(seed: 5)
        for step in 0..<20_000 {
            let key = Array("k\(rng.next() % 200)".utf8)
            let present = reference[key]
            let found = key.withUnsafeBytes { index.slot(for: $0) }
            #expect(found == present, "step \(step): lookup of \(String(decoding: key, as: UTF8.self))")
            if let slot = present, rng.next() % 2 == 0 {
                index.remove(slot: slot)
                reference[key] = nil
                freeSlots.append(slot)
            } else if present == nil, let slot = freeSlots.popLast() {
                key.withUnsafeBytes { index.insert($0, slot: slot) }
                reference[key] = slot
            }
            #expect(index.count == reference.count)
        }
        for (key, slot) in reference {
            #expect(index.key(slot) == key)
            #expect(key.withUnsafeBytes { index.slot(for: $0) } == slot)
        }
    }

    /// Long keys (kept aside) and short ones (inline) side by side, through growth.
    @Test func longAndShortKeysThroughGrowth() {
        var index = StreamKeyIndex(capacity: 8)
        let keys = (0..<8).map { i in [UInt8](repeating: UInt8(65 + i), count: i % 2 == 0 ? 5 : 40 + i) }
        for (slot, key) in keys.enumerated() { key.withUnsafeBytes { index.insert($0, slot: slot) } }
        index.grow(to: 100)
        for (slot, key) in keys.enumerated() {
            #expect(key.withUnsafeBytes { index.slot(for: $0) } == slot)
            #expect(index.key(slot) == key)
        }
        index.remove(slot: 3)
        #expect(keys[3].withUnsafeBytes { index.slot(for: $0) } == nil)
        #expect(index.count == 7)
    }

    @Test func keysOfAnyLengthAndBytes() {
        var index = StreamKeyIndex(capacity: 4)
        let long = [UInt8](repeating: 0xE2, count: 255)
        long.withUnsafeBytes { index.insert($0, slot: 2) }
        #expect(long.withUnsafeBytes { index.slot(for: $0) } == 2)
        #expect(Array(long.prefix(254)).withUnsafeBytes { index.slot(for: $0) } == nil)
        #expect(index.key(2) == long)
    }
}
