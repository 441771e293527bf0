import Foundation
import RecurdForecast
import RecurdTestSupport
import Testing

/// The text context model against its independent Python reference
/// (Tests/Fixtures/text/generate.py), and its promise: never much worse than the network alone,
/// much better on text that repeats.
@Suite struct TextContextTests {
    /// The fixture's base distribution for step t: softmax(2 sin(0.37 s + 0.011 t)).
    static func base(_ t: Int) -> [Float] {
        let l = (0..<256).map { 2 * sin(0.37 * Double($0) + 0.011 * Double(t)) }
        let top = l.max()!
        let e = l.map { exp($0 - top) }
        let z = e.reduce(0, +)
        return e.map { Float($0 / z) }
    }

    static func model(buckets: Int) -> UnsafeMutableRawPointer {
        let bytes = TextContextModel.bytes(buckets: buckets)
        let m = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 16)
        m.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return m
    }

    @Test func matchesThePythonReference() throws {
        let url = FixturePaths.root.appendingPathComponent("text/context_vectors.csv")
        let rows = try String(contentsOf: url, encoding: .utf8).split(whereSeparator: \.isNewline).dropFirst()
            .map { $0.split(separator: ",").map { Double(String($0))! } }
        #expect(rows.count == 1592)
        let m = Self.model(buckets: 64)
        defer { m.deallocate() }
        var out = [Float](repeating: 0, count: 256)
        var worstObserved = 0.0, worstDistribution = 0.0, firstOff = -1
        for (t, r) in rows.enumerated() {
            let symbol = UInt8(r[1])
            if t == 0 {
                TextContextModel.learn(m, buckets: 64, symbol: symbol)
                continue
            }
            let q = Self.base(t - 1)
            q.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { TextContextModel.distribution(m, buckets: 64, base: b.baseAddress!, into: $0.baseAddress!) }
            }
            let p = TextContextModel.observe(m, buckets: 64, symbol: symbol) { Double(q[Int($0)]) }
            if firstOff < 0 && abs(p - r[2]) / r[2] > 1e-6 { firstOff = t }
            worstObserved = max(worstObserved, abs(p - r[2]) / r[2])
            worstDistribution = max(worstDistribution, abs(Double(out[Int(symbol)]) - r[3]) / r[3])
        }
        // observe is double precision throughout (the base probability comes in as f32);
        // distribution works in f32.
        #expect(worstObserved < 1e-6, "observed probability off by \(worstObserved) (relative), first at step \(firstOff)")
        #expect(worstDistribution < 1e-4, "distribution off by \(worstDistribution) (relative)")
    }

    /// Bits per byte of the published distribution over `data`, the base being `base(t)`.
    static func bits(_ data: [UInt8], buckets: Int, base: (Int) -> [Float]) -> (published: Double, base: Double) {
        let m = Self.model(buckets: buckets)
        defer { m.deallocate() }
        var published = 0.0, plain = 0.0
        var out = [Float](repeating: 0, count: 256)
        for (t, s) in data.enumerated() {
            let q = base(t)
            if t > 0 {
                q.withUnsafeBufferPointer { b in
                    out.withUnsafeMutableBufferPointer { TextContextModel.distribution(m, buckets: buckets, base: b.baseAddress!, into: $0.baseAddress!) }
                }
                let p = TextContextModel.observe(m, buckets: buckets, symbol: s) { Double(q[Int($0)]) }
                #expect(abs(Double(out[Int(s)]) - p) <= 1e-4 * p, "step \(t): distribution and observe disagree")
                published -= log2(p)
                plain -= log2(Double(q[Int(s)]))
            } else {
                TextContextModel.learn(m, buckets: buckets, symbol: s)
            }
        }
        let n = Double(data.count - 1)
        return (published / n, plain / n)
    }

    @Test func distributionSumsToOne() {
        let m = Self.model(buckets: 256)
        defer { m.deallocate() }
        for s in Array("abracadabra abracadabra".utf8) { TextContextModel.learn(m, buckets: 256, symbol: s) }
        var out = [Float](repeating: 0, count: 256)
        Self.base(3).withUnsafeBufferPointer { b in
            out.withUnsafeMutableBufferPointer { TextContextModel.distribution(m, buckets: 256, base: b.baseAddress!, into: $0.baseAddress!) }
        }
        let sum = out.reduce(0, +)
        #expect(abs(sum - 1) < 1e-5)
        #expect(out.allSatisfy { $0 > 0 })
    }

    @Test func repeatedTextBecomesCheap() {
        let phrase = Array("the quick brown fox jumps over the lazy dog; ".utf8)
        let data = Array((0..<40).map { _ in phrase }.joined())
        let uniform = [Float](repeating: 1.0 / 256, count: 256)
        let r = Self.bits(data, buckets: 4096) { _ in uniform }
        #expect(r.base == 8)
        #expect(r.published < 1, "published \(r.published) bits/byte on text that repeats 40 times")
    }

    /// A long passage seen once before, with no short context that predicts it (random bytes):
    /// counts of at most 8 bytes each saw one continuation once and stay unsure; the match model
    /// follows the earlier copy and learns that it holds.
    @Test func aPassageSeenOnceIsFollowedByTheMatchModel() {
        var rng = SplitMix(seed: 11)
        let passage = (0..<6_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let uniform = [Float](repeating: 1.0 / 256, count: 256)
        let first = Self.bits(passage, buckets: 4096) { _ in uniform }
        let both = Self.bits(passage + passage, buckets: 4096) { _ in uniform }
        let second = (both.published * Double(2 * passage.count - 1) - first.published * Double(passage.count - 1)) / Double(passage.count)
        #expect(first.published > 7.5, "random bytes cost \(first.published) bits/byte the first time")
        #expect(second < 0.5, "the repeat cost \(second) bits/byte")
    }

    /// When the network is already sharp and the contexts only add noise (random bytes from a
    /// known distribution), the mixture moves to the network: at most a little worse than it.
    @Test func neverMuchWorseThanTheNetwork() {
        var rng = SplitMix(seed: 7)
        let data = (0..<20_000).map { _ in UInt8(rng.next() % 4) }
        let sharp: [Float] = (0..<256).map { $0 < 4 ? 0.2499 : 0.0004 / 252 }
        let r = Self.bits(data, buckets: 1024) { _ in sharp }
        #expect(r.published <= r.base + 0.02, "published \(r.published) bits/byte, network alone \(r.base)")
    }

    struct SplitMix {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}
