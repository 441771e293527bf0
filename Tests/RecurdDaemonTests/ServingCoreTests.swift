import Foundation
import Logging
@testable import RecurdDaemon
import RecurdModelFile
import RecurdNumerics
import RecurdStore
import RecurdStreams
import RecurdTestSupport
import RecurdWire
import Testing

/// The serving loop's parts, driven in-process without sockets: bytes in, outputs collected.
@Suite struct ServingCoreTests {
    final class Collector: OutputSink {
        var outputs: [(key: String, message: OutputMessage)] = []
        func send(topic: [UInt8], payload: [UInt8]) -> Bool {
            outputs.append((String(decoding: topic, as: UTF8.self), try! OutputCodec.decode(payload)))
            return true
        }
    }

    let arch = ModelArchitecture(cell: .lstm, input: .features(size: 2), hidden: [6], outputSize: 2, head: .linear)

    /// A core over `worker` (default: one with no store) and `stateDirectory`.
    func core(worker: StoreWorker? = nil, stateDirectory: String? = nil,
              _ configure: (inout ServeConfiguration) -> Void = { _ in }) -> (ServingCore, Collector, Model) {
        var c = ServeConfiguration()
        c.learn = false
        c.normalize = false
        c.combine = false
        c.maxStreams = 64
        c.maxBatch = 8
        configure(&c)
        let model = makeModel(arch, seed: 5)
        let logger = Logger(label: "test")
        let metrics = DaemonMetrics()
        let worker = worker ?? StoreWorker(store: nil, checkpoints: nil, maxStored: 10, logger: logger, metrics: metrics, wake: WakeSignal())
        let layout = StreamRecordLayoutFor(c, arch)
        let runtime = ModelRuntime(model: model, modelPath: nil, startVersion: 0, configuration: c, window: layout.window, optimizerState: nil,
                                   logger: logger, metrics: metrics)
        let sink = Collector()
        let core = ServingCore(configuration: c, layout: layout, runtime: runtime, sink: sink, worker: worker, stateDirectory: stateDirectory,
                               counters: DaemonCounters(), metrics: metrics, logger: logger)
        // Every round in one cycle, as the tests count them: the 2 ms budget would cut a cycle
        // short whenever a loaded machine preempts the test.
        core.scheduler.cycleBudgetNanoseconds = .max
        return (core, sink, model)
    }

    func send(_ core: ServingCore, _ key: String, _ m: InputMessage) {
        let payload = InputEncoder.encode(m)
        Array(key.utf8).withUnsafeBytes { k in payload.withUnsafeBytes { p in core.admit(frames: 2, key: k, payload: p, receivedAt: 0) } }
    }

    func cycle(_ core: ServingCore, _ body: () -> Void) {
        core.beginCycle()
        body()
        core.scheduler.run(pressure: false)
    }

    /// A stream evicted and heard from again in the same pass comes back from the store with the
    /// state it left with: the eviction's write reaches the store before the load, and the key
    /// filter knows the key at once. Before, a stream never written yet started afresh, and one
    /// written before came back with its older record.
    @Test func evictedAndBackInOnePassIsExact() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let worker = StoreWorker(store: try StreamStore(path: dir.appendingPathComponent("streams.sqlite").path), checkpoints: nil, maxStored: 100,
                                 logger: Logger(label: "test"), metrics: DaemonMetrics(), wake: WakeSignal())
        worker.start()
        defer { worker.stop() }
        let (core, sink, _) = self.core(worker: worker, stateDirectory: dir.path) {
            $0.maxStreams = 2
            $0.maxBatch = 1
        }
        func pump(until done: () -> Bool) {
            let deadline = Date().addingTimeInterval(10)
            while !done() && Date() < deadline {
                cycle(core) { core.handleCompletions() }
                core.residency.submit()
                usleep(1000)
            }
        }
        pump { core.residency.hasKeyFilter }
        #expect(core.residency.hasKeyFilter)
        let x: [[Float]] = [[0.5, -1], [1, 0.25], [-0.75, 2]]
        let (roomy, roomySink, _) = self.core()
        // A and B in memory; then, in one pass, C (A, least recently used, leaves) and A again.
        for (t, keys) in [(0, ["A", "B"]), (1, ["C", "A"])] {
            cycle(core) { for k in keys { send(core, k, InputMessage(inputKind: .features, xdim: 2, steps: 1, seq: UInt64(t), features: x[t])) } }
            cycle(roomy) { for k in keys { send(roomy, k, InputMessage(inputKind: .features, xdim: 2, steps: 1, seq: UInt64(t), features: x[t])) } }
            core.residency.submit()
        }
        pump { sink.outputs.filter { $0.key == "A" }.count == 2 }
        let a = sink.outputs.filter { $0.key == "A" }.map(\.message)
        let expected = roomySink.outputs.filter { $0.key == "A" }.map(\.message)
        #expect(a.count == 2 && expected.count == 2)
        #expect(a.last?.flags.contains(.newState) == false, "A started afresh")
        #expect(a.last?.values == expected.last?.values && a.last?.values.isEmpty == false)
    }

    /// Predictions equal the step engine's for each stream, interleaved, one and many steps a message.
    @Test func interleavedStreamsEqualTheEngine() {
        let (core, sink, model) = core()
        var rng = SeededGenerator(seed: 3)
        let data = (0..<3).map { _ in (0..<10).map { _ in randomFloats(2, rng: &rng) } }
        cycle(core) {
            for s in 0..<3 { send(core, "s\(s)", InputMessage(inputKind: .features, xdim: 2, steps: 4, seq: 0, features: data[s][0..<4].flatMap { $0 })) }
        }
        cycle(core) {
            for t in 4..<10 { for s in 0..<3 { send(core, "s\(s)", InputMessage(inputKind: .features, xdim: 2, steps: 1, seq: UInt64(t), features: data[s][t])) } }
        }
        for s in 0..<3 {
            let engine = StepEngine(layout: model.layout, maxBatch: 1)
            var expected: [Float] = []
            for x in data[s] {
                x.withUnsafeBufferPointer { engine.setFeatures(row: 0, $0.baseAddress!) }
                engine.step(weights: model.weights.pointer, batch: 1)
                expected += Array(UnsafeBufferPointer(start: engine.output(row: 0), count: 2))
            }
            let got = sink.outputs.filter { $0.key == "s\(s)" }.flatMap(\.message.values)
            // Batched products round differently from one stream's in the last bits.
            #expect(got.count == expected.count && maxAbsDifference(got, expected) < 1e-6, "s\(s)")
        }
        #expect(sink.outputs.filter { $0.key == "s0" }.first?.message.flags.contains(.newState) == true)
    }

    /// Steps use the packed copies only after the same weights served 16 steps (and only with
    /// kernels that read them), and never stale ones: every weight change (inline or background) takes the copies away until they are
    /// re-packed from the new weights. One row and a batch of six both give the unpacked bits.
    @Test(arguments: [true, false])
    func packedWeightsFollowEveryChange(_ inline: Bool) {
        var c = ServeConfiguration()
        c.syncLearning = inline
        let model = makeModel(arch, seed: 5)
        let metrics = DaemonMetrics()
        let layout = StreamRecordLayoutFor(c, arch)
        let runtime = ModelRuntime(model: model, modelPath: nil, startVersion: 0, configuration: c, window: layout.window, optimizerState: nil,
                                   logger: Logger(label: "test"), metrics: metrics)
        defer { runtime.stop() }
        func output(_ packed: PackedStepWeights?, batch: Int) -> [UInt32] {
            let engine = StepEngine(layout: model.layout, maxBatch: batch)
            for b in 0..<batch {
                let x: [Float] = [0.4 - Float(b) * 0.3, -1.2 + Float(b) * 0.5]
                x.withUnsafeBufferPointer { engine.setFeatures(row: b, $0.baseAddress!) }
            }
            engine.step(weights: runtime.weights, batch: batch, packed: packed)
            return (0..<batch).flatMap { Array(UnsafeBufferPointer(start: engine.output(row: $0), count: 2)).map(\.bitPattern) }
        }
        var rng = SeededGenerator(seed: 8)
        for change in 0..<3 {
            for step in 1...ModelRuntime.packAfterSteps + 2 {
                // One-row and batched steps on the same weights, each kind packed after its own 16.
                for batch in [1, 6] {
                    let packed = runtime.packedWeights(batch: batch)
                    let kernelsRead = PackedStepWeights.kernelsRead(batch: batch)
                    #expect((packed != nil) == (kernelsRead && step >= ModelRuntime.packAfterSteps), "change \(change) step \(step) batch \(batch)")
                    if let packed {
                        #expect(packed.serves(batch: batch))
                        #expect(output(packed, batch: batch) == output(nil, batch: batch), "a stale packed copy after change \(change), \(batch) rows")
                    }
                }
            }
            // As a reload: the store thread installs a background trainer's weights, serving takes them.
            let reloaded = FloatBuffer(randomFloats(model.layout.count, rng: &rng))
            runtime.backgroundTrainer?.replaceWeights(reloaded)
            runtime.replaceWeights(reloaded)
            runtime.pin()
        }
        // Each kind after its own steps: one-row steps on new weights make no batch copy.
        for _ in 1...ModelRuntime.packAfterSteps { _ = runtime.packedWeights(batch: 1) }
        #expect(runtime.packedWeights(batch: 6) == nil)
    }

    @Test func sequencePolicy() {
        typealias P = SequencePolicy
        #expect(P.verdict(flags: [], seq: 5, stream: nil, afterEnd: false, anySeq: false, onGap: .continue)
                == .accept(seq: 5, flags: .newState, resetFirst: false, breakFirst: false))
        #expect(P.verdict(flags: [], seq: 3, stream: 4, afterEnd: false, anySeq: false, onGap: .continue) == .duplicate(seq: 3, expected: 4))
        #expect(P.verdict(flags: [], seq: 9, stream: 4, afterEnd: false, anySeq: false, onGap: .continue)
                == .accept(seq: 9, flags: .gap, resetFirst: false, breakFirst: true))
        #expect(P.verdict(flags: [], seq: 9, stream: 4, afterEnd: false, anySeq: false, onGap: .reset)
                == .accept(seq: 9, flags: [.gap, .newState], resetFirst: true, breakFirst: false))
        #expect(P.verdict(flags: .reset, seq: 0, stream: 40, afterEnd: false, anySeq: false, onGap: .continue)
                == .accept(seq: 0, flags: .newState, resetFirst: true, breakFirst: false))
        #expect(P.verdict(flags: [], seq: 2, stream: 40, afterEnd: true, anySeq: false, onGap: .continue)
                == .accept(seq: 2, flags: .newState, resetFirst: true, breakFirst: false))
        #expect(P.verdict(flags: [], seq: 17, stream: 1, afterEnd: false, anySeq: true, onGap: .continue)
                == .accept(seq: 17, flags: [], resetFirst: false, breakFirst: false))
        #expect(P.verdict(flags: [], seq: nil, stream: 4, afterEnd: false, anySeq: false, onGap: .continue)
                == .accept(seq: 4, flags: [], resetFirst: false, breakFirst: false))
    }

    /// A zero-step RESET (of any kind and width) fits the model, and the next output says the state is new.
    @Test func zeroStepResetFlagsTheNextOutput() {
        let (core, sink, _) = core()
        cycle(core) { send(core, "k", InputMessage(inputKind: .features, xdim: 2, steps: 2, seq: 0, features: [1, 2, 3, 4])) }
        // Binary, of another kind and width: it fits anyway.
        cycle(core) { send(core, "k", InputMessage(inputKind: .text, flags: .reset, xdim: 1, steps: 0, seq: 7)) }
        #expect(core.counters.rejected.isEmpty)
        // JSON, without a seq: the next message's seq is taken as it comes.
        cycle(core) {
            let json = Array(#"{"reset": true}"#.utf8)
            Array("k".utf8).withUnsafeBytes { k in json.withUnsafeBytes { core.admit(frames: 2, key: k, payload: $0, receivedAt: 0) } }
        }
        #expect(core.counters.rejected.isEmpty)
        cycle(core) { send(core, "k", InputMessage(inputKind: .features, xdim: 2, steps: 1, seq: 41, features: [1, 2])) }
        let last = sink.outputs.last!.message
        #expect(last.flags == .newState && last.seq == 41, "\(last)")   // seq taken as it comes after a RESET without one
        #expect(core.counters.gaps == 0)
    }

    /// Under `on-gap continue` nothing is scored across a gap.
    @Test func noLossAcrossAGap() {
        let (core, sink, _) = core()
        cycle(core) { send(core, "g", InputMessage(inputKind: .features, xdim: 2, steps: 3, seq: 0, features: [1, 2, 3, 4, 5, 6])) }
        cycle(core) { send(core, "g", InputMessage(inputKind: .features, xdim: 2, steps: 2, seq: 10, features: [1, 2, 3, 4])) }
        let m = sink.outputs.last!.message
        #expect(m.flags == .gap && m.losses[0].isNaN && m.losses[1].isFinite, "\(m)")
    }

    /// A long message's predictions come out in chunks with the more flag, and the round limit
    /// lets other streams through between them.
    @Test func chunksAndRoundLimits() {
        let (core, sink, _) = core()
        core.scheduler.chunkSteps = 4
        core.scheduler.maxRounds = 3
        cycle(core) {
            send(core, "long", InputMessage(inputKind: .features, xdim: 2, steps: 10, seq: 0, features: (0..<20).map(Float.init)))
            send(core, "short", InputMessage(inputKind: .features, xdim: 2, steps: 1, seq: 0, features: [1, 1]))
        }
        #expect(sink.outputs.map(\.key) == ["short", "long"])
        for _ in 0..<4 { cycle(core) {} }
        let long = sink.outputs.filter { $0.key == "long" }.map(\.message)
        #expect(long.map(\.steps).reduce(0, +) == 10)
        #expect(long.dropLast().allSatisfy { $0.flags.contains(.more) } && !long.last!.flags.contains(.more))
        #expect(long.allSatisfy { $0.steps <= 4 })
        #expect(zip(long, long.dropFirst()).allSatisfy { $0.seq + UInt64($0.steps) == $1.seq })
    }

    /// A stop past its deadline drops what is queued: each stream's next seq goes back to its
    /// first step not taken, so that a resend after the restart is not a duplicate.
    @Test func messagesLeftAtAStopAreNotCountedAsServed() throws {
        let (core, _, _) = core()
        core.scheduler.maxRounds = 3
        cycle(core) {
            send(core, "long", InputMessage(inputKind: .features, xdim: 2, steps: 10, seq: 100, features: (0..<20).map(Float.init)))
            send(core, "long", InputMessage(inputKind: .features, xdim: 2, steps: 2, seq: 110, features: [1, 2, 3, 4]))
            send(core, "later", InputMessage(inputKind: .features, xdim: 2, steps: 1, seq: 7, features: [1, 1]))
        }
        // "long" took 3 steps of its first message; "later" was served.
        let long = try #require(core.table.slot(for: Array("long".utf8)))
        #expect(core.table.record(long).nextSeq == 112)
        #expect(core.scheduler.cancelAll() == 2)
        #expect(core.table.record(long).nextSeq == 103)
        #expect(core.table.isDirty(long))
        #expect(!core.scheduler.hasWork)
    }

    /// A control `reset` in the middle of a long message: the chunk that starts after it carries
    /// the new-state flag and no loss for its first step, and the next message does not.
    @Test func resetMidMessageFlagsTheChunkAfterIt() throws {
        let (core, sink, _) = core()
        core.scheduler.maxRounds = 3
        let handler = ControlHandler(counters: core.counters, startedAt: 0, worker: nil)
        cycle(core) { send(core, "long", InputMessage(inputKind: .features, xdim: 2, steps: 9, seq: 0, features: (0..<18).map(Float.init))) }
        guard case .reply = handler.handle(Array("reset long".utf8), core: core, configuration: core.configuration, apply: { _ in }) else {
            Issue.record("deferred")
            return
        }
        for _ in 0..<3 { cycle(core) {} }
        cycle(core) { send(core, "long", InputMessage(inputKind: .features, xdim: 2, steps: 1, seq: 9, features: [1, 2])) }
        let out = sink.outputs.filter { $0.key == "long" }.map(\.message)
        #expect(out.map(\.seq) == [0, 3, 6, 9], "\(out.map(\.seq))")
        #expect(out.map { $0.flags.contains(.newState) } == [true, true, false, false], "\(out.map(\.flags))")
        #expect(out[1].losses[0].isNaN && out[1].losses[1].isFinite && out[3].losses[0].isFinite)
    }

    @Test func controlInProcess() throws {
        let (core, _, _) = core()
        cycle(core) { send(core, "a", InputMessage(inputKind: .features, xdim: 2, steps: 3, seq: 0, features: [1, 2, 3, 4, 5, 6])) }
        let handler = ControlHandler(counters: core.counters, startedAt: 0, worker: nil)
        var applied: ServeConfiguration?
        func ask(_ text: String) throws -> [String: Any] {
            guard case .reply(let r) = handler.handle(Array(text.utf8), core: core, configuration: core.configuration, apply: { applied = $0 }) else {
                Issue.record("deferred")
                return [:]
            }
            return try JSONSerialization.jsonObject(with: Data(r.bytes)) as! [String: Any]
        }
        #expect(try ask("stream a")["steps"] as? Int == 3)
        #expect(try ask("set lr=0.02")["lr"] as? Double == 0.02 && applied?.learningRate == 0.02)
        #expect(try ask("set lr=2")["ok"] as? Bool == false)
        #expect(try ask("set max-batch=4")["ok"] as? Bool == false)
        #expect(try ask(String(repeating: "x", count: 70_000))["error"] as? String ?? "" != "")
        // A JSON request names its key exactly, spaces at its ends included; text trims them.
        cycle(core) { send(core, "a ", InputMessage(inputKind: .features, xdim: 2, steps: 1, seq: 0, features: [1, 2])) }
        #expect(try ask(#"{"command": "stream", "key": "a "}"#)["steps"] as? Int == 1)
        #expect(try ask(#"{"command": "drop", "key": "a "}"#)["dropped"] as? String == "a ")
        #expect(try ask("stream a")["steps"] as? Int == 3, "dropping 'a ' left 'a' alone")
        #expect(try ask("drop a")["dropped"] as? String == "a")
        #expect(try ask("stream a")["ok"] as? Bool == false)
        // A request not understood is answered with what was wrong with it.
        for (request, says) in [("STATS", "unknown command 'STATS'"), ("stream", "'stream' needs a stream key"), ("stats now", "'stats' takes no argument"),
                                ("learning maybe", "'learning' takes on or off"), ("set lr", "'set' takes NAME=VALUE"),
                                (#"{"command": "stats""#, "not valid JSON: Unexpected end of file"), (#"{"command": "stream"}"#, #"'stream' needs a "key" string"#),
                                (#"{"key": "a"}"#, #"needs a "command" string"#), (#"{"command": "learning", "on": 1}"#, #""on": true or false"#),
                                (#"{"command": "drop", "key": "a", "key": "b"}"#, "field 'key' given twice in one object (byte offset 32)")] {
            let error = try ask(request)["error"] as? String ?? ""
            #expect(error.hasPrefix("cannot read the request: ") && error.contains(says), "\(request): \(error)")
        }
        #expect(try ask(#"{"command": "learning", "on": false}"#)["learning"] as? Bool == false)
    }
}

/// The record layout the daemon uses for a configuration.
func StreamRecordLayoutFor(_ c: ServeConfiguration, _ a: ModelArchitecture) -> StreamRecordLayout {
    StreamRecordLayout(architecture: a, learning: c.learning, nextStepTargets: c.targets == .next, standardize: c.normalize,
                       forecast: c.forecastOptions)
}
