import Foundation
import RecurdNumerics
@testable import RecurdStreams
import RecurdTestSupport
import Testing

/// One record per stream: what a stream is, encoded once, read back exactly.
@Suite struct StreamRecordTests {
    static let layouts: [StreamRecordLayout] = [
        StreamRecordLayout(architecture: ModelArchitecture(cell: .lstm, input: .features(size: 3), hidden: [8, 5], outputSize: 3, head: .linear),
                           learning: LearningConfiguration(k1: 4, k2: 10, optimizer: .adam, learningRate: 0.01, clip: 1),
                           nextStepTargets: true, standardize: true),
        StreamRecordLayout(architecture: ModelArchitecture(cell: .gru, input: .tokens(vocabulary: 20, embedding: 4), hidden: [6], outputSize: 20, head: .softmax),
                           learning: LearningConfiguration(k1: 3, k2: 7, optimizer: .sgd, learningRate: 0.1, clip: 0),
                           nextStepTargets: true, standardize: false),
        StreamRecordLayout(architecture: ModelArchitecture(cell: .lstm, input: .features(size: 2), hidden: [4], outputSize: 3, head: .softmax),
                           learning: LearningConfiguration(k1: 2, k2: 5, optimizer: .adam, learningRate: 0.01, clip: 1),
                           nextStepTargets: false, standardize: false),
        // A forecasting stream that combines and scores (sections 6 and 7).
        StreamRecordLayout(architecture: ModelArchitecture(cell: .gru, input: .features(size: 2), hidden: [5], outputSize: 2, head: .linear, residual: true),
                           learning: LearningConfiguration(k1: 4, k2: 8, optimizer: .adam, learningRate: 0.01, clip: 1),
                           nextStepTargets: true, standardize: true, forecast: ForecastOptions(combine: true, anomalyScores: true)),
    ]

    /// Drives `steps` steps of DESIGN §3's bookkeeping on a record with random inputs.
    func drive(_ table: StreamTable, _ slot: Int, steps: Int, seed: UInt64, labelled: (Int) -> Bool = { _ in true }) {
        let layout = table.layout, a = layout.architecture
        let learning = StreamLearning(layout: layout)
        var rng = SeededGenerator(seed: seed)
        let r = table.record(slot)
        let modelInput = FloatBuffer(count: max(a.input.layerInputSize, 1))
        for t in 0..<steps {
            let explicit = !layout.nextStepTargets && labelled(t)
            var token: Int32 = 0
            let x = randomFloats(a.input.layerInputSize, amplitude: 3, rng: &rng)
            if case .tokens(let v, _) = a.input { token = Int32(rng.next() % UInt64(v)) }
            _ = x.withUnsafeBufferPointer { xp in
                learning.prepare(r, features: layout.architecture.input.name == "tokens" ? nil : xp.baseAddress!, token: token,
                                 modelInput: layout.architecture.input.name == "tokens" ? nil : modelInput.pointer, explicitTarget: explicit, learnable: t % 9 != 8)
            }
            let logits = randomFloats(a.outputSize, rng: &rng)
            let newState = randomFloats(a.stateSize, amplitude: 0.9, rng: &rng)
            let target = Int32(rng.next() % UInt64(a.outputSize))
            _ = logits.withUnsafeBufferPointer { lp in
                learning.finish(r, logits: lp.baseAddress!, stateBefore: r.state, modelInput: UnsafePointer(modelInput.pointer), token: token,
                                explicitTarget: explicit, targetValues: nil, targetClass: target)
            }
            if layout.architecture.input.name != "tokens" {
                let out = FloatBuffer(count: a.outputSize)
                logits.withUnsafeBufferPointer { lp in x.withUnsafeBufferPointer { xp in
                    learning.publishable(r, outputs: lp.baseAddress!, features: xp.baseAddress!, into: out.pointer)
                } }
            }
            newState.withUnsafeBufferPointer { r.state.update(from: $0.baseAddress!, count: a.stateSize) }
            r.steps += 1
            r.nextSeq += 1
            r.lossSum += Double(t)
            r.lossCount += 1
        }
    }

    func bytes(_ r: StreamRecord) -> [UInt8] {
        var out = Array(UnsafeRawBufferPointer(start: r.core, count: r.layout.coreBytes))
        if let w = r.windowIfInUse { out += UnsafeRawBufferPointer(start: w.base, count: w.layout.byteCount) }
        return out
    }

    /// Zeroing a slot hands whole pages back to the kernel: every byte of the range reads zero
    /// afterwards, edges included, and nothing outside it changes. Cases: the slot's own start,
    /// an odd offset, a page-aligned start, and a range both starting and ending on a page.
    @Test(arguments: 0..<4)
    func zeroingAReusedSlotClearsExactlyItsBytes(alignment: Int) {
        let slab = RecordSlab(slotBytes: 80 * RecordSlab.pageSize)   // over the 64 pages from which zero() hands pages back
        let p = slab.pointer(1)
        p.initializeMemory(as: UInt8.self, repeating: 0xA5, count: slab.slotBytes)
        let page = RecordSlab.pageSize
        let toPage = (page - Int(bitPattern: p) % page) % page
        let offset = [0, 5, toPage, toPage][alignment]
        let count = alignment == 3 ? 72 * page : slab.slotBytes - offset - 7
        RecordSlab.zero(p + offset, count: count)
        let bytes = UnsafeRawBufferPointer(start: p, count: slab.slotBytes)
        #expect(bytes[offset..<(offset + count)].allSatisfy { $0 == 0 })
        #expect(bytes[..<offset].allSatisfy { $0 == 0xA5 } && bytes[(offset + count)...].allSatisfy { $0 == 0xA5 })
        // Memory zeroed this way is ordinary memory: written again, it holds what was written.
        (p + offset + 100_000).storeBytes(of: 7, as: UInt8.self)
        #expect(bytes[offset + 100_000] == 7)
    }

    /// Turning combining or scores on or off keeps a stored stream; only those parts start afresh.
    @Test func otherForecastSettingsKeepTheStream() throws {
        let a = Self.layouts[3]
        #expect(a.combine && a.anomalyScorers == 2 && a.publishedCount == 2)
        let table = StreamTable(layout: a, capacity: 1)
        let slot = Array("a".utf8).withUnsafeBytes { table.insert($0, now: 0) }!
        drive(table, slot, steps: 30, seed: 4)
        let encoded = StreamRecordCodec.encode(table.record(slot))
        let plain = StreamRecordLayout(architecture: a.architecture, learning: LearningConfiguration(k1: 4, k2: 8, optimizer: .adam, learningRate: 0.01, clip: 1),
                                       nextStepTargets: true, standardize: true)
        #expect(plain.coreBytes < a.coreBytes)
        let other = StreamTable(layout: plain, capacity: 1)
        let o = Array("a".utf8).withUnsafeBytes { other.insertUninitialized($0) }!
        try StreamRecordCodec.decode(encoded, into: other.record(o), now: 0)
        #expect(other.record(o).steps == 30 && other.record(o).hasWindow)
        // And back: the plain record into the scoring layout starts its combiner and scorers at zero.
        let again = StreamRecordCodec.encode(other.record(o))
        let back = StreamTable(layout: a, capacity: 1)
        let b = Array("a".utf8).withUnsafeBytes { back.insertUninitialized($0) }!
        try StreamRecordCodec.decode(again, into: back.record(b), now: 0)
        let r = back.record(b)
        #expect(r.steps == 30)
        #expect(UnsafeRawBufferPointer(start: r.core + a.publishedOffset, count: a.forecastBytes + a.anomalyBytes).allSatisfy { $0 == 0 })
        // Its next step is not scored against a published forecast of 0 (the one it had is gone);
        // the plain record, which kept no forecast, still awaits its target.
        #expect(other.record(o).awaitsTarget && !r.awaitsTarget)
    }

    @Test(arguments: [0, 1, 2, 3])
    func roundTripIsExact(_ which: Int) throws {
        let layout = Self.layouts[which]
        let table = StreamTable(layout: layout, capacity: 4)
        for steps in [0, 1, 3, 11, 40] {
            let slot = try #require(Array("k\(steps)".utf8).withUnsafeBytes { table.insert($0, now: 100) })
            drive(table, slot, steps: steps, seed: UInt64(steps))
            let encoded = StreamRecordCodec.encode(table.record(slot))
            let copy = try #require(Array("copy".utf8).withUnsafeBytes { table.insertUninitialized($0) })
            try StreamRecordCodec.decode(encoded, into: table.record(copy), now: 200)
            // Everything that matters for the stream is the same (the window's ring is re-based).
            #expect(StreamRecordCodec.encode(table.record(copy)) == encoded, "\(steps) steps")
            let a = table.record(slot), b = table.record(copy)
            #expect(Array(UnsafeBufferPointer(start: a.state, count: layout.architecture.stateSize)) == Array(UnsafeBufferPointer(start: b.state, count: layout.architecture.stateSize)))
            #expect(a.nextSeq == b.nextSeq && a.steps == b.steps && a.lossSum == b.lossSum && a.awaitsTarget == b.awaitsTarget)
            #expect(a.windowIfInUse?.count == b.windowIfInUse?.count)
            table.forget(copy, reason: .drop)
            table.forget(slot, reason: .drop)
        }
    }

    /// A stored window holding a token the model does not have is refused (training would read
    /// past the embedding; this module runs without bounds checks).
    @Test func aWindowHoldingATokenOutsideTheVocabularyIsRefused() throws {
        let layout = Self.layouts[1]   // tokens, vocabulary 20
        let table = StreamTable(layout: layout, capacity: 2)
        let slot = try #require(Array("t".utf8).withUnsafeBytes { table.insert($0, now: 0) })
        drive(table, slot, steps: 12, seed: 4)
        var encoded = StreamRecordCodec.encode(table.record(slot))
        func u32(_ at: Int) -> UInt32 { encoded.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self) } }
        // The window is the last section: its length field is followed by exactly its body.
        let lengthAt = try #require((0..<(encoded.count - 4)).last { Int(u32($0)) == encoded.count - $0 - 4 })
        let firstToken = lengthAt + 4 + StreamRecordCodec.descriptor(try #require(layout.window)).count * 4 + 24
        #expect(u32(firstToken) < 20)
        withUnsafeBytes(of: UInt32(1_000_000).littleEndian) { for i in 0..<4 { encoded[firstToken + i] = $0[i] } }
        let copy = try #require(Array("c".utf8).withUnsafeBytes { table.insertUninitialized($0) })
        #expect(throws: StreamRecordCodecError.self) { try StreamRecordCodec.decode(encoded, into: table.record(copy), now: 0) }
    }

    /// A window read back trains exactly as the original: same loss, same gradient.
    @Test func restoredWindowTrainsTheSame() throws {
        let layout = Self.layouts[0]
        let table = StreamTable(layout: layout, capacity: 2)
        let a = Array("a".utf8).withUnsafeBytes { table.insert($0, now: 0) }!
        drive(table, a, steps: 37, seed: 9)
        let b = Array("b".utf8).withUnsafeBytes { table.insertUninitialized($0) }!
        try StreamRecordCodec.decode(StreamRecordCodec.encode(table.record(a)), into: table.record(b), now: 0)
        let model = makeModel(layout.architecture, seed: 3)
        let config = LearningConfiguration(k1: 4, k2: 10, optimizer: .sgd, learningRate: 0.1, clip: 0)
        let t1 = Trainer(layout: model.layout, configuration: config), t2 = Trainer(layout: model.layout, configuration: config)
        let l1 = t1.accumulateGradient(windows: [table.record(a).windowIfInUse!], weights: model.weights.pointer)
        let l2 = t2.accumulateGradient(windows: [table.record(b).windowIfInUse!], weights: model.weights.pointer)
        #expect(l1 == l2 && t1.gradients.array == t2.gradients.array)
    }

    /// A partly labelled window (explicit targets, steps without one among them) reads back with
    /// its labels: same bytes again, same loss and gradient; a fully labelled one is stored as
    /// before labels were kept (no label bytes).
    @Test func partlyLabelledWindowReadsBackWithItsLabels() throws {
        let layout = Self.layouts[2]   // explicit class targets, k1 2, k2 5
        let table = StreamTable(layout: layout, capacity: 4)
        let a = Array("a".utf8).withUnsafeBytes { table.insert($0, now: 0) }!
        drive(table, a, steps: 23, seed: 5) { $0 % 3 != 1 }
        let encoded = StreamRecordCodec.encode(table.record(a))
        let b = Array("b".utf8).withUnsafeBytes { table.insertUninitialized($0) }!
        try StreamRecordCodec.decode(encoded, into: table.record(b), now: 0)
        #expect(StreamRecordCodec.encode(table.record(b)) == encoded)
        let model = makeModel(layout.architecture, seed: 3)
        let config = LearningConfiguration(k1: 2, k2: 5, optimizer: .sgd, learningRate: 0.1, clip: 0)
        let t1 = Trainer(layout: model.layout, configuration: config), t2 = Trainer(layout: model.layout, configuration: config)
        let wa = try #require(table.record(a).windowIfInUse), wb = try #require(table.record(b).windowIfInUse)
        #expect(wa.count == 5)
        let l1 = t1.accumulateGradient(windows: [wa], weights: model.weights.pointer)
        let l2 = t2.accumulateGradient(windows: [wb], weights: model.weights.pointer)
        #expect(l1.isFinite && l1 == l2 && t1.gradients.array == t2.gradients.array)
        // Fully labelled: no label bytes, so the stored form is as long as before.
        let c = Array("c".utf8).withUnsafeBytes { table.insert($0, now: 0) }!
        drive(table, c, steps: 23, seed: 5)
        #expect(StreamRecordCodec.encode(table.record(c)).count == encoded.count - 5)
    }

    @Test func anotherModelsRecordIsRefusedWithTheOffset() throws {
        let table = StreamTable(layout: Self.layouts[0], capacity: 2)
        let slot = Array("a".utf8).withUnsafeBytes { table.insert($0, now: 0) }!
        drive(table, slot, steps: 5, seed: 1)
        let encoded = StreamRecordCodec.encode(table.record(slot))
        let other = StreamTable(layout: Self.layouts[1], capacity: 1)
        let o = Array("a".utf8).withUnsafeBytes { other.insertUninitialized($0) }!
        #expect(throws: StreamRecordCodecError.self) { try StreamRecordCodec.decode(encoded, into: other.record(o), now: 0) }
        do { try StreamRecordCodec.decode(encoded, into: other.record(o), now: 0) } catch { #expect(error.offset == 8 && error.reason.contains("another model")) }
        // Truncated anywhere: an error naming a byte offset, never a crash; the record is left new.
        let copy = Array("b".utf8).withUnsafeBytes { table.insertUninitialized($0) }!
        for cut in stride(from: 0, to: encoded.count, by: 7) {
            #expect(throws: StreamRecordCodecError.self) { try StreamRecordCodec.decode(Array(encoded.prefix(cut)), into: table.record(copy), now: 5) }
            #expect(table.record(copy).isFresh && table.record(copy).steps == 0)
        }
    }

    /// A window written under other k1/k2 is dropped; the rest of the stream stays.
    @Test func otherLearningSettingsDropOnlyTheWindow() throws {
        let a = Self.layouts[0]
        let table = StreamTable(layout: a, capacity: 1)
        let slot = Array("a".utf8).withUnsafeBytes { table.insert($0, now: 0) }!
        drive(table, slot, steps: 20, seed: 2)
        let encoded = StreamRecordCodec.encode(table.record(slot))
        let changed = StreamRecordLayout(architecture: a.architecture, learning: LearningConfiguration(k1: 8, k2: 16, optimizer: .adam, learningRate: 0.01, clip: 1),
                                         nextStepTargets: true, standardize: true)
        let other = StreamTable(layout: changed, capacity: 1)
        let o = Array("a".utf8).withUnsafeBytes { other.insertUninitialized($0) }!
        try StreamRecordCodec.decode(encoded, into: other.record(o), now: 0)
        #expect(other.record(o).steps == 20 && !other.record(o).hasWindow)
    }

    @Test func keyFilterHasNoFalseNegativesAndFewFalsePositives() {
        var filter = KeyFilter(capacity: 10_000)
        for i in 0..<10_000 { filter.insert(Array("in-\(i)".utf8)) }
        for i in 0..<10_000 { #expect(Array("in-\(i)".utf8).withUnsafeBytes { filter.mayContain($0) }) }
        let falsePositives = (0..<10_000).filter { i in Array("out-\(i)".utf8).withUnsafeBytes { filter.mayContain($0) } }.count
        #expect(falsePositives < 300, "\(falsePositives) false positives in 10,000")
    }

    @Test func keyGroupIsFixedForever() {
        // FNV-1a 64 of "sensor-1" modulo 4096, as any client computes it.
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in "sensor-1".utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        #expect(KeyGroup.of(Array("sensor-1".utf8)) == Int(h % 4096))
        #expect(KeyGroup.of(Array("a".utf8)) == Int(UInt64(0xAF63_DC4C_8601_EC8C) % 4096))
    }
}
