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

    @Test func keysOfAnyLengthAndBytes() {
        var index = StreamKeyIndex(capacity: 4)
        let long = [UInt8](repeating: 0xE2, count: 255)
        long.withUnsafeBytes { index.insert($0, slot: 2) }
        #expect(long.withUnsafeBytes { index.slot(for: $0) } == 2)
        #expect(Array(long.prefix(254)).withUnsafeBytes { index.slot(for: $0) } == nil)
        #expect(index.key(2) == long)
    }
}
