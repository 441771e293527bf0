import Foundation
import Logging
@testable import RecurdDaemon
import RecurdForecast
import RecurdNumerics
import RecurdStreams
import RecurdTestSupport
import RecurdWire
import Testing

/// DESIGN §3.7 and §4 in the serving path: residual heads, the published combination and its
/// loss, anomaly scores and their alert counts.
@Suite struct ForecastServingTests {
    typealias Collector = ServingCoreTests.Collector

    func core(_ arch: ModelArchitecture, model: Model? = nil, _ configure: (inout ServeConfiguration) -> Void) -> (ServingCore, Collector) {
        var c = ServeConfiguration()
        c.learn = false
        c.maxStreams = 64
        c.maxBatch = 8
        configure(&c)
        let model = model ?? Model(architecture: arch, seed: 5)
        let logger = Logger(label: "test")
        let metrics = DaemonMetrics()
        let worker = StoreWorker(store: nil, checkpoints: nil, maxStored: 10, logger: logger, metrics: metrics, wake: WakeSignal())
        let layout = StreamRecordLayoutFor(c, arch)
        let runtime = ModelRuntime(model: model, modelPath: nil, startVersion: 0, configuration: c, window: layout.window, optimizerState: nil,
                                   logger: logger, metrics: metrics)
        let sink = Collector()
        let core = ServingCore(configuration: c, layout: layout, runtime: runtime, sink: sink, worker: worker, stateDirectory: nil,
                               counters: DaemonCounters(), metrics: metrics, logger: logger)
        return (core, sink)
    }

    func send(_ core: ServingCore, _ key: String, _ m: InputMessage) {
        let payload = InputEncoder.encode(m)
        core.beginCycle()
        Array(key.utf8).withUnsafeBytes { k in payload.withUnsafeBytes { p in core.admit(frames: 2, key: k, payload: p, receivedAt: 0) } }
        core.scheduler.run(pressure: false)
        // A long message runs over several cycles (each has a round and time limit).
        while core.scheduler.hasWork {
            core.beginCycle()
            core.scheduler.run(pressure: false)
        }
    }

    let residual = ModelArchitecture(cell: .lstm, input: .features(size: 2), hidden: [8], outputSize: 2, head: .linear, residual: true)

    func series(_ n: Int, shiftAt: Int = .max) -> [[Float]] {
        var rng = SeededGenerator(seed: 21)
        return (0..<n).map { t in
            let shift: Float = t >= shiftAt ? 40 : 0
            return [Float(50 + 10 * sin(Double(t) * 0.2)) + Float(rng.nextUnit()) + shift, Float(-3 + cos(Double(t) * 0.1)) + shift]
        }
    }

    /// A fresh residual model, standardising and not combining, forecasts persistence in the
    /// stream's units (up to the standardiser's round trip).
    @Test func freshResidualModelPublishesPersistence() {
        let (core, sink) = core(residual) { $0.combine = false }
        let xs = series(30)
        for (t, x) in xs.enumerated() { send(core, "a", InputMessage(inputKind: .features, xdim: 2, steps: 1, seq: UInt64(t), features: x)) }
        #expect(sink.outputs.count == 30)
        for (t, o) in sink.outputs.enumerated() {
            for j in 0..<2 { #expect(abs(o.message.values[j] - xs[t][j]) <= 1e-5 * max(1, abs(xs[t][j])), "step \(t)") }
        }
        // Combined, a fresh stream's first forecast is still its input: every member starts there.
        let (combined, combinedSink) = self.core(residual) { $0.combine = true }
        send(combined, "b", InputMessage(inputKind: .features, xdim: 2, steps: 1, seq: 0, features: xs[0]))
        let first = combinedSink.outputs[0].message.values
        for j in 0..<2 { #expect(abs(first[j] - xs[0][j]) <= 1e-5 * max(1, abs(xs[0][j]))) }
    }

    /// With combining on, the first forecast is the input itself, and each progressive loss is the
    /// published forecast's squared error (not the network's).
    @Test func theLossIsThatOfWhatWasPublished() {
        let plain = ModelArchitecture(cell: .gru, input: .features(size: 2), hidden: [8], outputSize: 2, head: .linear)
        let (core, sink) = core(plain) { $0.normalize = false }
        let xs = series(60)
        for (t, x) in xs.enumerated() { send(core, "a", InputMessage(inputKind: .features, xdim: 2, steps: 1, seq: UInt64(t), features: x)) }
        let outs = sink.outputs.map(\.message)
        #expect(outs[0].losses[0].isNaN)
        for t in 1..<60 {
            let y = outs[t - 1].values, x = xs[t]
            let expected = ((x[0] - y[0]) * (x[0] - y[0]) + (x[1] - y[1]) * (x[1] - y[1])) / 2
            #expect(abs(outs[t].losses[0] - expected) <= 1e-4 * max(1, expected), "step \(t): \(outs[t].losses[0]) vs \(expected)")
        }
        // The combination is not the network's raw forecast.
        let (rawCore, rawSink) = self.core(plain) { $0.normalize = false; $0.combine = false }
        for (t, x) in xs.enumerated() { send(rawCore, "a", InputMessage(inputKind: .features, xdim: 2, steps: 1, seq: UInt64(t), features: x)) }
        #expect(rawSink.outputs.last!.message.values != outs.last!.values)
    }

    /// Scores come with every output (bit2), lie in [0, 1] (NaN first), alarm on a level shift,
    /// and the alerts are counted for the stream and in stats.
    @Test(arguments: [ServeConfiguration.OutputFormat.binary, .json])
    func anomalyScoresFlagALevelShift(_ format: ServeConfiguration.OutputFormat) throws {
        let (core, sink) = core(residual) { $0.anomalyScores = true; $0.outputFormat = format }
        let xs = series(400, shiftAt: 300)
        for (t, x) in xs.enumerated() { send(core, "a", InputMessage(inputKind: .features, xdim: 2, steps: 1, seq: UInt64(t), features: x)) }
        let outs = sink.outputs.map(\.message)
        #expect(outs.allSatisfy { $0.flags.contains(.anomaly) && $0.anomaly.count == 1 })
        #expect(outs[0].anomaly[0].isNaN)
        #expect(outs.dropFirst().allSatisfy { $0.anomaly[0] >= 0 && $0.anomaly[0] < 1 })
        let before = outs[60..<300].map { $0.anomaly[0] }.max()!, at = outs[300..<305].map { $0.anomaly[0] }.max()!
        #expect(at >= 0.3 && at > before, "shift \(at), before \(before)")
        let r = core.table.record(core.table.slot(for: Array("a".utf8))!)
        let alerts = outs.filter { $0.anomaly[0] >= 0.3 }.count
        #expect(r.anomalyAlerts == UInt64(alerts) && alerts >= 1)
        #expect(core.counters.anomalyAlerts == UInt64(alerts))
    }

    /// Text streams score the surprise of their progressive loss.
    @Test func tokenStreamsScoreTheirLoss() {
        let text = ModelArchitecture(cell: .gru, input: .tokens(vocabulary: 256, embedding: 4), hidden: [8], outputSize: 256, head: .softmax)
        let (core, sink) = core(text) { $0.anomalyScores = true }
        let bytes = Array(String(repeating: "abcabcabc ", count: 20).utf8)
        send(core, "t", InputMessage(inputKind: .text, xdim: 1, steps: bytes.count, seq: 0, tokens: bytes.map(UInt32.init)))
        #expect(sink.outputs.allSatisfy { $0.message.flags.contains(.anomaly) })
        let scores = sink.outputs.flatMap(\.message.anomaly)
        #expect(scores.count == bytes.count)
        #expect(scores[0].isNaN && scores[1].isNaN, "no loss before the second step, and the scorer's first value is NaN")
        #expect(scores.dropFirst(2).allSatisfy { $0 >= 0 && $0 < 1 })
    }

    /// A text stream publishes the context model's mixture: each row is a distribution, each
    /// progressive loss is −ln of what the previous row gave the byte that came, text that repeats
    /// becomes cheap, and the record (with its contexts) round-trips through the codec.
    @Test func textStreamsPublishTheContextMixture() throws {
        let text = ModelArchitecture(cell: .gru, input: .tokens(vocabulary: 256, embedding: 4), hidden: [8], outputSize: 256, head: .softmax)
        let bytes = Array(String(repeating: "the cat sat on the mat. ", count: 30).utf8)
        func run(_ contextBytes: Int) -> (ServingCore, [OutputMessage]) {
            let (core, sink) = self.core(text) { $0.textContextBytes = contextBytes }
            send(core, "t", InputMessage(inputKind: .text, xdim: 1, steps: bytes.count, seq: 0, tokens: bytes.map(UInt32.init)))
            let rows = sink.outputs.map(\.message)
            return (core, rows)
        }
        let (core, outs) = run(1 << 20)
        let values = outs.flatMap(\.values), losses = outs.flatMap(\.losses)
        #expect(values.count == bytes.count * 256 && losses.count == bytes.count)
        for t in 0..<bytes.count {
            let row = values[(t * 256)..<((t + 1) * 256)]
            #expect(abs(row.reduce(0, +) - 1) < 1e-4 && row.allSatisfy { $0 > 0 }, "step \(t)")
            guard t > 0 else { continue }
            let expected = -log(Double(values[(t - 1) * 256 + Int(bytes[t])]))
            #expect(abs(Double(losses[t]) - expected) <= 1e-3 * max(1, expected), "step \(t): loss \(losses[t]), −ln p \(expected)")
        }
        let (_, plainOuts) = run(0)
        let plain = plainOuts.flatMap(\.losses)
        let tail = (bytes.count * 2 / 3)..<bytes.count
        let mixed = tail.map { Double(losses[$0]) }.reduce(0, +), network = tail.map { Double(plain[$0]) }.reduce(0, +)
        #expect(mixed < 0.2 * network, "last third: \(mixed) nats with contexts, \(network) without")

        let slot = try #require(core.table.slot(for: Array("t".utf8)))
        let encoded = StreamRecordCodec.encode(core.table.record(slot))
        #expect(encoded.count > core.table.layout.textBytes)
        let (other, _) = run(1 << 20)
        let copy = try #require(Array("u".utf8).withUnsafeBytes { other.table.insert($0, now: 0) })
        try StreamRecordCodec.decode(encoded, into: other.table.record(copy), now: 0)
        #expect(StreamRecordCodec.encode(other.table.record(copy)) == encoded)
        // Another context size: the stream is kept, its contexts start empty.
        let (small, _) = run(1 << 18)
        let s = try #require(Array("u".utf8).withUnsafeBytes { small.table.insert($0, now: 0) })
        try StreamRecordCodec.decode(encoded, into: small.table.record(s), now: 0)
        #expect(small.table.record(s).steps == UInt64(bytes.count))
    }

    /// The bundled pre-trained text model loads and has the created text model's shape.
    @Test func bundledTextModelLoads() throws {
        let file = try PretrainedTextModel.load()
        let a = file.model.architecture
        let c = ServeConfiguration()
        #expect(a.cell == c.newModelCell && a.hidden == c.newModelHidden && a.head == .softmax && a.outputSize == 256)
        #expect(a.input == .tokens(vocabulary: 256, embedding: c.newModelEmbedding))
    }
}

