import Foundation
import RecurdTestSupport
import RecurdWire
import Testing
import ZeroMQ

/// `recurd serve` as a real process over real sockets; predictions checked against `recurd run`.
@Suite(.serialized) struct DaemonEndToEndTests {
    /// This test's own directory, removed after it (Swift Testing makes a suite instance per test).
    let scratch = ScratchDirectory()
    var dir: URL { scratch.url }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// A 3-feature LSTM [16, 8] model with a linear head.
    func featureModel() throws -> String {
        let r = try runRecurd(["init", "--cell", "lstm", "--hidden", "16,8", "--input-size", "3", "--output-size", "3", "--head", "linear", "--seed", "4", "-o", path("m.safetensors")])
        #expect(r.status == 0, "\(r.stderr)")
        return path("m.safetensors")
    }

    /// Deterministic rows for stream `s`.
    func rows(stream s: Int, count: Int) -> [[Float]] {
        (0..<count).map { t in (0..<3).map { j in Float(sin(Double(t) * 0.3 + Double(s) * 1.7 + Double(j))) * Float(1 + s % 3) } }
    }

    /// `recurd run` on `rows`: the reference predictions.
    func reference(model: String, rows: [[Float]], name: String) throws -> [[Float]] {
        let csv = rows.map { $0.map { "\($0)" }.joined(separator: ",") }.joined(separator: "\n") + "\n"
        try csv.write(toFile: path(name), atomically: true, encoding: .utf8)
        let r = try runRecurd(["run", "--model", model, "--input", path(name)])
        #expect(r.status == 0, "\(r.stderr)")
        return r.stdout.split(separator: "\n").map { $0.split(separator: ",").map { Float($0)! } }
    }

    func features(_ rows: ArraySlice<[Float]>, seq: UInt64, flags: WireFlags = []) -> InputMessage {
        InputMessage(inputKind: .features, flags: flags, xdim: 3, steps: rows.count, seq: seq, features: rows.flatMap { $0 })
    }

    @Test(arguments: ["binary", "json"])
    func interleavedStreamsMatchRecurdRun(_ format: String) throws {
        let model = try featureModel()
        let daemon = try DaemonHarness(arguments: ["--model", model, "--no-learn", "--no-normalize", "--no-combine", "--output-format", format, "--max-batch", "64"])
        let streams = 12, steps = 48
        var expected: [String: [[Float]]] = [:]
        var data: [String: [[Float]]] = [:]
        for s in 0..<streams {
            data["s\(s)"] = rows(stream: s, count: steps)
            expected["s\(s)"] = try reference(model: model, rows: data["s\(s)"]!, name: "s\(s).csv")
        }
        // Even streams send one step per message; odd ones 1–5 steps per message, some as JSON.
        var cursors = [Int](repeating: 0, count: streams)
        var messages = 0
        while cursors.contains(where: { $0 < steps }) {
            for s in 0..<streams where cursors[s] < steps {
                let n = s % 2 == 0 ? 1 : min(1 + (cursors[s] % 5), steps - cursors[s])
                let key = "s\(s)"
                let slice = data[key]![cursors[s]..<(cursors[s] + n)]
                if s % 4 == 3 {
                    let xs = slice.map { "[" + $0.map { "\($0)" }.joined(separator: ",") + "]" }.joined(separator: ",")
                    try daemon.send(frames: [Array(key.utf8), Array(#"{"seq": \#(cursors[s]), "xs": [\#(xs)]}"#.utf8)])
                } else {
                    try daemon.send(key: key, features(slice, seq: UInt64(cursors[s])))
                }
                cursors[s] += n
                messages += 1
            }
        }
        var received: [String: [[Float]]] = [:]
        // A busy machine may answer a many-step message in more than one output (a serving cycle's
        // time limit): read until every step is back, not a count of messages.
        var outputs = 0, total = 0
        while total < streams * steps {
            guard let (key, m) = try daemon.receive() else { Issue.record("timed out after \(total) steps"); break }
            if key.hasPrefix("__probe__") { continue }
            outputs += 1
            total += m.steps
            #expect(m.odim == 3 && m.kind == .vector)
            let firstStep = received[key, default: []].count
            #expect(m.seq == UInt64(firstStep), "\(key): outputs out of order")
            #expect(m.flags.contains(.newState) == (firstStep == 0))
            for s in 0..<m.steps { received[key, default: []].append(Array(m.values[(s * 3)..<(s * 3 + 3)])) }
            #expect(m.modelVersion == 0)
        }
        #expect(outputs >= messages, "\(outputs) outputs for \(messages) messages")
        for s in 0..<streams {
            let key = "s\(s)"
            let got = received[key] ?? []
            #expect(got.count == steps, "\(key)")
            var worst: Float = 0
            for (a, b) in zip(got, expected[key]!) { worst = max(worst, zip(a, b).map { abs($0 - $1) }.max()!) }
            #expect(worst < 1e-6, "\(key): max |daemon − recurd run| = \(worst)")
        }
        let stats = try daemon.control("stats")
        #expect(stats["steps"] as? Int ?? 0 >= streams * steps)
        #expect(stats["rejected_total"] as? Int == 0)
        #expect(daemon.terminate() == 0)
    }

    /// The daemon standardises feature streams by default; `recurd run --normalize` applies the
    /// same rule, so a model trained that way replays in the stream's units.
    @Test func runNormalizeMatchesTheStandardisingDaemon() throws {
        let model = try featureModel()
        // 200 steps in outputs of at most 1024 bytes come in chunks, which the harness joins: this
        // also checks that joining (what keeps the learning tests exact on a loaded machine) is right.
        let daemon = try DaemonHarness(arguments: ["--model", model, "--no-learn", "--no-combine", "--max-output-bytes", "1024"])
        let data = rows(stream: 5, count: 200).map { $0.map { $0 * 30 + 90 } }   // far from mean 0, sd 1
        let csv = data.map { $0.map { "\($0)" }.joined(separator: ",") }.joined(separator: "\n") + "\n"
        try csv.write(toFile: path("n.csv"), atomically: true, encoding: .utf8)
        let r = try runRecurd(["run", "--model", model, "--input", path("n.csv"), "--normalize"])
        #expect(r.status == 0, "\(r.stderr)")
        let expected = r.stdout.split(separator: "\n").map { $0.split(separator: ",").map { Float($0)! } }
        let plain = try reference(model: model, rows: data, name: "plain.csv")
        try daemon.send(key: "n", features(data[0..<200], seq: 0))
        let m = try daemon.receive(count: 1)[0].message
        #expect(m.steps == 200 && m.values.count == 600 && m.losses.count == 200 && !m.flags.contains(.more))
        var worst: Float = 0, apart: Float = 0
        for t in 0..<200 {
            for j in 0..<3 {
                worst = max(worst, abs(m.values[t * 3 + j] - expected[t][j]) / max(1, abs(expected[t][j])))
                apart = max(apart, abs(plain[t][j] - expected[t][j]))
            }
        }
        #expect(worst < 1e-6, "max relative |daemon − run --normalize| = \(worst)")
        #expect(apart > 1, "standardising made no difference: the test would not see a missing --normalize")
        #expect(daemon.terminate() == 0)
    }

    @Test func textStreamsWithTopK() throws {
        let r = try runRecurd(["init", "--cell", "gru", "--hidden", "24", "--vocab", "256", "--embed", "8", "--output-size", "256", "--head", "softmax", "-o", path("t.safetensors")])
        #expect(r.status == 0)
        let text = "To be, or not to be, that is the question."
        try text.write(toFile: path("t.txt"), atomically: true, encoding: .utf8)
        let run = try runRecurd(["run", "--model", path("t.safetensors"), "--input", path("t.txt")])
        let expected = run.stdout.split(separator: "\n").map { $0.split(separator: ",").map { Float($0)! } }
        // The network's own distribution, which `recurd run` prints: --no-combine leaves out the
        // context model too, whatever --text-context-bytes says.
        let daemon = try DaemonHarness(arguments: ["--model", path("t.safetensors"), "--no-learn", "--no-normalize", "--no-combine", "--top-k", "3",
                                                   "--text-context-bytes", "4194304"], probeText: true)
        let bytes = Array(text.utf8)
        try daemon.send(key: "play", InputMessage(inputKind: .text, xdim: 1, steps: 10, seq: 0, tokens: bytes[0..<10].map(UInt32.init)))
        try daemon.send(frames: [Array("play".utf8), Array(#"{"seq": 10, "text": "\#(String(decoding: bytes[10...], as: UTF8.self))"}"#.utf8)])
        let outs = try daemon.receive(count: 2)
        var step = 0
        for (_, m) in outs {
            #expect(m.kind == .topK && m.odim == 3)
            for s in 0..<m.steps {
                let ref = expected[step]
                let best = ref.enumerated().max { $0.element < $1.element }!
                #expect(m.ids[s * 3] == UInt32(best.offset), "step \(step)")
                #expect(abs(m.values[s * 3] - best.element) < 1e-6)
                #expect(m.values[s * 3] >= m.values[s * 3 + 1] && m.values[s * 3 + 1] >= m.values[s * 3 + 2])
                // Next-byte targets: from the second step on, each step carries the loss of the previous prediction.
                if step > 0 {
                    let p = expected[step - 1][Int(bytes[step])]
                    #expect(abs(m.losses[s] - (-log(p))) < 1e-4, "loss at step \(step)")
                } else {
                    #expect(m.losses[s].isNaN)
                }
                step += 1
            }
        }
        #expect(step == bytes.count)
    }

    @Test func resetEndDuplicatesAndGaps() throws {
        let model = try featureModel()
        let daemon = try DaemonHarness(arguments: ["--model", model, "--no-learn", "--no-normalize", "--no-combine", "--no-combine"])
        let data = rows(stream: 0, count: 20)
        let whole = try reference(model: model, rows: data, name: "a.csv")
        let fromTen = try reference(model: model, rows: Array(data[10...]), name: "b.csv")
        // seq 0…4, a duplicate of 3, then 5…9.
        for t in 0..<5 { try daemon.send(key: "k", features(data[t...t], seq: UInt64(t))) }
        try daemon.send(key: "k", features(data[3...3], seq: 3))
        try daemon.send(key: "k", features(data[5..<10], seq: 5))
        var outs = try daemon.receive(count: 6)
        #expect(outs.map(\.message.seq) == [0, 1, 2, 3, 4, 5])
        #expect(Array(outs[5].message.values[12..<15]) == whole[9] || zip(outs[5].message.values[12..<15], whole[9]).allSatisfy { abs($0 - $1) < 1e-6 })
        var stats = try daemon.control("stats")
        #expect(stats["duplicates"] as? Int == 1)
        // RESET restarts the state and the numbering: equals a fresh run from step 10.
        try daemon.send(key: "k", features(data[10...10], seq: 100, flags: [.reset]))
        try daemon.send(key: "k", features(data[11...11], seq: 101))
        outs = try daemon.receive(count: 2)
        #expect(outs[0].message.flags.contains(.newState))
        #expect(zip(outs[1].message.values, fromTen[1]).allSatisfy { abs($0 - $1) < 1e-6 })
        // A gap (seq 105 after 101): counted, flagged, and the state carries on (policy continue).
        try daemon.send(key: "k", features(data[12...12], seq: 105))
        outs = try daemon.receive(count: 1)
        #expect(outs[0].message.flags == [.gap])
        #expect(zip(outs[0].message.values, fromTen[2]).allSatisfy { abs($0 - $1) < 1e-6 })
        stats = try daemon.control("stats")
        #expect(stats["gaps"] as? Int == 1)
        // END forgets the stream; the key then starts afresh.
        let before = try daemon.control("stats")["streams"] as? Int ?? 0
        try daemon.send(key: "k", features(data[13...13], seq: 106, flags: [.end]))
        _ = try daemon.receive(count: 1)
        #expect(try daemon.control("stats")["streams"] as? Int == before - 1)
        #expect(try daemon.control("stream k")["ok"] as? Bool == false)
        try daemon.send(key: "k", features(data[0...0], seq: 0))
        outs = try daemon.receive(count: 1)
        #expect(outs[0].message.flags == [.newState])
        #expect(zip(outs[0].message.values, whole[0]).allSatisfy { abs($0 - $1) < 1e-6 })
        // A zero-step END follows the sequence rules (DESIGN §4): a lower seq is a duplicate and
        // forgets nothing (a replayed log must not end a live stream); the expected seq forgets
        // the stream; a higher one is a gap, counted, and forgets it too.
        let counts = try daemon.control("stats")
        _ = try daemon.step(key: "z", features(data[0...0], seq: 0))
        try daemon.send(key: "k", InputMessage(inputKind: .features, flags: [.end], xdim: 0, steps: 0, seq: 0))
        #expect(eventually(10) { (try? daemon.control("stats")["duplicates"] as? Int) == (counts["duplicates"] as? Int ?? 0) + 1 })
        #expect(try daemon.control("stream k")["ok"] as? Bool == true, "a duplicate END left k alone")
        for (key, seq, gaps) in [("k", UInt64(1), 0), ("z", UInt64(500), 1)] {
            try daemon.send(key: key, InputMessage(inputKind: .features, flags: [.end], xdim: 0, steps: 0, seq: seq))
            #expect(eventually(10) { (try? daemon.control("stream \(key)")["ok"] as? Bool) == false }, "\(key) forgotten")
            #expect(try daemon.control("stats")["gaps"] as? Int == (counts["gaps"] as? Int ?? 0) + gaps)
        }
    }

    @Test func gapPolicyReset() throws {
        let model = try featureModel()
        let daemon = try DaemonHarness(arguments: ["--model", model, "--no-learn", "--no-normalize", "--no-combine", "--on-gap", "reset"])
        let data = rows(stream: 1, count: 6)
        let fresh = try reference(model: model, rows: Array(data[3...]), name: "c.csv")
        try daemon.send(key: "g", features(data[0..<3], seq: 0))
        try daemon.send(key: "g", features(data[3..<6], seq: 10))
        let outs = try daemon.receive(count: 2)
        #expect(outs[1].message.flags == [.newState, .gap])
        for s in 0..<3 { #expect(zip(outs[1].message.values[(s * 3)..<(s * 3 + 3)], fresh[s]).allSatisfy { abs($0 - $1) < 1e-6 }) }
    }

    @Test func everyMalformedClassIsRejectedAndServiceContinues() throws {
        let model = try featureModel()
        let daemon = try DaemonHarness(arguments: ["--model", model, "--no-learn", "--no-normalize", "--no-combine", "--max-message-bytes", "4096"])
        let data = rows(stream: 2, count: 40)
        let expected = try reference(model: model, rows: data, name: "d.csv")
        let good = InputEncoder.encode(features(data[0...0], seq: 0))
        func mutated(_ edit: (inout [UInt8]) -> Void) -> [UInt8] { var b = good; edit(&b); return b }
        let cases: [(String, [[UInt8]])] = [
            ("frames", [Array("k".utf8)]),
            ("frames", [Array("k".utf8), good, [1]]),
            ("key", [[], good]),
            ("key", [Array(repeating: 65, count: 256), good]),
            ("key", [[65, 0, 66], good]),
            ("key", [[0xFF, 0xFE], good]),
            ("short", [Array("k".utf8), Array(good[0..<20])]),
            ("length", [Array("k".utf8), Array(good.dropLast(4))]),
            ("length", [Array("k".utf8), good + [0, 0, 0, 0]]),
            ("magic", [Array("k".utf8), mutated { $0[0] = 0x41 }]),
            ("version", [Array("k".utf8), mutated { $0[1] = 9 }]),
            ("input_kind", [Array("k".utf8), mutated { $0[2] = 7 }]),
            ("target_kind", [Array("k".utf8), mutated { $0[3] = 5 }]),
            ("flags", [Array("k".utf8), mutated { $0[5] = 0x80 }]),
            ("reserved", [Array("k".utf8), mutated { $0[10] = 1 }]),
            ("empty", [Array("k".utf8), mutated { $0[12] = 0 ; $0.removeLast(12) }]),
            ("dimension", [Array("k".utf8), InputEncoder.encode(InputMessage(inputKind: .features, xdim: 2, steps: 1, seq: 0, features: [1, 2]))]),
            ("kind", [Array("k".utf8), InputEncoder.encode(InputMessage(inputKind: .text, xdim: 1, steps: 1, seq: 0, tokens: [65]))]),
            ("target", [Array("k".utf8), InputEncoder.encode(InputMessage(inputKind: .features, targetKind: .classIndex, xdim: 3, ydim: 1, steps: 1, seq: 0, features: [1, 2, 3], targetClasses: [1]))]),
            ("non_finite", [Array("k".utf8), mutated { $0.replaceSubrange(32..<36, with: [0, 0, 0xC0, 0x7F]) }]),
            ("json", [Array("k".utf8), Array(#"{"x": [1, 2, "#.utf8)]),
            ("json", [Array("k".utf8), Array(#"{"x": [1, 2, 3], "bogus": 1}"#.utf8)]),
            ("json", [Array("k".utf8), Array(#"{"x": [1, 2, 3], "x": [4, 5, 6]}"#.utf8)]),
            ("json", [Array("k".utf8), Array(#"{"x": [1, 2, 3],}"#.utf8)]),
            ("too_large", [Array("k".utf8), [UInt8](repeating: 0x52, count: 5000)]),
        ]
        var seq: UInt64 = 0
        var expectedRejects: [String: Int] = [:]
        for (reason, frames) in cases {
            try daemon.send(frames: frames)
            expectedRejects[reason, default: 0] += 1
            // A correct message right after is served, from the state the bad one left untouched.
            try daemon.send(key: "k", features(data[Int(seq)...Int(seq)], seq: seq))
            let outs = try daemon.receive(count: 1)
            #expect(outs[0].key == "k" && outs[0].message.seq == seq, "after \(reason)")
            #expect(zip(outs[0].message.values, expected[Int(seq)]).allSatisfy { abs($0 - $1) < 1e-6 }, "after \(reason): state disturbed")
            seq += 1
        }
        let stats = try daemon.control("stats")
        let rejected = stats["rejected"] as! [String: Int]
        for (reason, n) in expectedRejects { #expect(rejected[reason] == n, "\(reason): \(rejected[reason] ?? -1) of \(n)") }
        // Logged, but at most once per second per reason.
        #expect(daemon.log.contains("rejected message"))
        let (status, metrics) = try daemon.http("/metrics")
        #expect(status == 200)
        #expect(metrics.contains(#"recurd_rejected_messages_total{reason="magic"} 1"#))
        #expect(metrics.contains(#"recurd_rejected_messages_total{reason="key"} 4"#))
        #expect(daemon.terminate() == 0)
    }

    /// HEAD for health checkers, 405 for other methods, and a connection that never finishes
    /// its request is closed (it held a file descriptor for good).
    @Test func httpMethodsAndIdleConnections() throws {
        let daemon = try DaemonHarness(arguments: ["--model", try featureModel(), "--no-learn"])
        let head = try httpRequest(port: daemon.httpPort, "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(head.0 == 200 && head.1.isEmpty, "\(head)")
        let post = try httpRequest(port: daemon.httpPort, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        #expect(post.0 == 405 && post.1.contains("GET and HEAD"), "\(post)")
        let started = Date()
        let partial = try httpRequest(port: daemon.httpPort, "GET /metrics HTTP/1.1\r\nHost: x\r\n", timeout: 30)
        let waited = Date().timeIntervalSince(started)
        #expect(partial.0 == 0 && waited < 25, "a half-sent request was held \(waited) s")
        #expect(try daemon.http("/healthz").0 == 200)
        #expect(daemon.terminate() == 0)
    }

    @Test func controlCommandsAndMetrics() throws {
        let model = try featureModel()
        let state = path("state")
        let daemon = try DaemonHarness(arguments: ["--model", model, "--no-learn", "--no-normalize", "--no-combine", "--state-dir", state])
        let data = rows(stream: 3, count: 10)
        for key in ["alpha", "beta"] { try daemon.send(key: key, features(data[0..<4], seq: 0)) }
        _ = try daemon.receive(count: 2)

        let stats = try daemon.control("stats")
        #expect(stats["ok"] as? Bool == true && stats["streams"] as? Int == 3)   // alpha, beta, the probe
        let streams = try daemon.control("streams")
        #expect((streams["streams"] as? [[String: Any]])?.contains { $0["key"] as? String == "alpha" } == true)
        let alpha = try daemon.control("stream alpha")
        #expect(alpha["steps"] as? Int == 4 && alpha["next_seq"] as? Int == 4 && alpha["targets"] as? Int == 3)
        #expect(alpha["mean_loss"] is Double)
        let json = try daemon.control(#"{"command": "stream", "key": "beta"}"#)
        #expect(json["steps"] as? Int == 4)
        #expect(try daemon.control("reset alpha")["ok"] as? Bool == true)
        try daemon.send(key: "alpha", features(data[4...4], seq: 4))
        let afterReset = try daemon.receive(count: 1)
        let fresh = try reference(model: model, rows: [data[4]], name: "e.csv")
        #expect(zip(afterReset[0].message.values, fresh[0]).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(try daemon.control("drop beta")["ok"] as? Bool == true)
        #expect(try daemon.control("stream beta")["ok"] as? Bool == false)
        let m = try daemon.control("model")
        #expect(m["cell"] as? String == "lstm" && m["hidden"] as? [Int] == [16, 8] && m["outputs"] as? Int == 3 && m["file"] as? String == model)
        let cp = try daemon.control("checkpoint")
        #expect(cp["ok"] as? Bool == true)
        #expect(FileManager.default.fileExists(atPath: state + "/model.safetensors"))
        let reload = try daemon.control("reload")
        // Reloading the model file makes a new model version.
        #expect(reload["ok"] as? Bool == true && reload["version"] as? Int == 1)
        #expect(try daemon.control("learning off")["learning"] as? Bool == false)
        #expect(try daemon.control("nonsense")["ok"] as? Bool == false)
        #expect(try daemon.control("stream")["ok"] as? Bool == false)

        let (status, body) = try daemon.http("/metrics")
        #expect(status == 200)
        for name in ["recurd_messages_total", "recurd_steps_total", "recurd_predictions_total", "recurd_duplicate_messages_total",
                     "recurd_sequence_gaps_total", "recurd_streams_active 2", "recurd_stream_evictions_total{reason=\"lru\"} 0",
                     "recurd_batch_size_bucket", "recurd_step_latency_seconds_bucket", "recurd_model_version 1",
                     "recurd_rejected_messages_total{reason=\"json\"} 0"] {
            #expect(body.contains(name), "missing \(name)")
        }
        #expect(!body.contains("alpha"), "no per-stream labels")
        #expect(try daemon.http("/healthz").0 == 200)
        #expect(try daemon.http("/nope").0 == 404)
    }

    @Test func lruEvictionAndIdleTimeout() throws {
        let model = try featureModel()
        let daemon = try DaemonHarness(arguments: ["--model", model, "--no-learn", "--no-normalize", "--no-combine", "--max-streams", "4", "--max-batch", "2", "--idle-timeout", "6"])
        let data = rows(stream: 4, count: 2)
        for key in ["a", "b", "c", "d"] { try daemon.send(key: key, features(data[0...0], seq: 0)); _ = try daemon.receive(count: 1) }
        // Four live slots (probe evicted first, then "a"): the least recently used go.
        let stats = try daemon.control("stats")
        #expect((stats["evictions"] as? [String: Int])?["lru"] == 1)
        #expect(try daemon.control("stream a")["ok"] as? Bool == true)
        try daemon.send(key: "e", features(data[0...0], seq: 0)); _ = try daemon.receive(count: 1)
        #expect(try daemon.control("stream a")["ok"] as? Bool == false)
        // Idle for over 6 s: the sweep evicts all four (given time on a busy machine). Long
        // enough that a stall of the test machine above does not make the LRU checks idle ones.
        Thread.sleep(forTimeInterval: 6.5)
        var later = try daemon.control("stats")
        let deadline = Date() + 20
        while later["streams"] as? Int != 0 && Date() < deadline { usleep(200_000); later = try daemon.control("stats") }
        #expect(later["streams"] as? Int == 0)
        #expect((later["evictions"] as? [String: Int])?["idle"] == 4)
    }

    /// `set max-streams` to more while the table is full and new keys keep arriving: a new key
    /// admitted in the same pass as the request took a slot the queues had no room for yet (a
    /// crash), so the limit goes up many times under a flood of new keys.
    @Test func raisingMaxStreamsWhileFullOfNewKeys() throws {
        let daemon = try DaemonHarness(arguments: ["--no-learn", "--max-streams", "2", "--max-batch", "1", "--high-water-mark", "100000"],
                                       probeWidth: 1)
        let context = try ZMQContext()
        let push = try ZMQSocket(context: context, type: .push)
        try push.connect(daemon.inputEndpoint)
        let payload = InputEncoder.encode(InputMessage(inputKind: .features, xdim: 1, steps: 1, seq: 0, features: [0.5]))
        var sent = 0
        for limit in 3...60 {
            for _ in 0..<200 {
                _ = try push.send(frames: [Array("new-\(sent)".utf8), payload])
                sent += 1
            }
            #expect(try daemon.control("set max-streams=\(limit)")["ok"] as? Bool == true, "limit \(limit)")
        }
        let stats = try daemon.control("stats")
        #expect(stats["ok"] as? Bool == true && (stats["streams"] as? Int ?? 0) <= 60)
        #expect(daemon.waitForExit(timeout: 0) == nil, "the daemon exited")
    }

    /// One key flooded with one-step messages faster than its steps (one per round) can be
    /// served: the daemon's queue stays within its bound (the rest waits in ZeroMQ), and every
    /// message is still served.
    @Test func aFloodWaitsInZeroMQBeyondTheQueuesBound() throws {
        let daemon = try DaemonHarness(arguments: ["--no-learn", "--high-water-mark", "1000000"], probeWidth: 1)
        let context = try ZMQContext()
        let push = try ZMQSocket(context: context, type: .push)
        try push.setSendHighWaterMark(1_000_000)
        try push.connect(daemon.inputEndpoint)
        let total = 150_000
        for t in 0..<total {
            let m = InputMessage(inputKind: .features, xdim: 1, steps: 1, seq: UInt64(t), features: [Float(t % 7)])
            _ = try push.send(frames: [Array("flood".utf8), InputEncoder.encode(m)])
        }
        var peak = 0
        let deadline = Date() + 120
        var stats = try daemon.control("stats")
        while (stats["steps"] as? Int ?? 0) < total && Date() < deadline {
            peak = max(peak, stats["queued_messages"] as? Int ?? 0)
            #expect((stats["queued_input_bytes"] as? Int ?? 0) <= 64 << 20)
            usleep(20_000)
            stats = try daemon.control("stats")
        }
        #expect(try eventually(10) { (try daemon.control("stream flood")["steps"] as? Int) == total }, "every message served")
        print("flood: peak queue \(peak) messages")
        #expect(peak <= 65_536, "queued \(peak) messages")
        #expect(try daemon.control("stats")["queued_messages"] as? Int == 0)
    }

    /// A message that publishes nothing (NO_PREDICT) hands its new-state and gap flags on to
    /// the stream's next output, which would otherwise not say them at all.
    @Test func noPredictMessagesHandTheirFlagsOn() throws {
        let model = try featureModel()
        let daemon = try DaemonHarness(arguments: ["--model", model, "--no-learn"])
        let data = rows(stream: 1, count: 8)
        // A new stream primed with NO_PREDICT: the first output says the state was new.
        try daemon.send(key: "np", features(data[0...0], seq: 0, flags: .noPredict))
        let first = try daemon.step(key: "np", features(data[1...1], seq: 1))
        #expect(first.flags.contains(.newState) && !first.flags.contains(.gap), "\(first.flags)")
        #expect(!(try daemon.step(key: "np", features(data[2...2], seq: 2))).flags.contains(.newState))
        // A gap before a NO_PREDICT message: the next output says there was one.
        try daemon.send(key: "np", features(data[3...3], seq: 7, flags: .noPredict))
        let after = try daemon.step(key: "np", features(data[4...4], seq: 8))
        #expect(after.flags.contains(.gap) && !after.flags.contains(.newState), "\(after.flags)")
        #expect(!(try daemon.step(key: "np", features(data[5...5], seq: 9))).flags.contains(.gap))
    }

    @Test func newModelFromTheFirstStream() throws {
        let daemon = try DaemonHarness(arguments: ["--no-learn", "--no-normalize", "--no-combine", "--no-combine"], probeWidth: 5)
        #expect(daemon.log.contains("created a new model from the first stream"))
        let m = try daemon.control("model")
        #expect(m["input_size"] as? Int == 5 && m["hidden"] as? [Int] == [64] && m["head"] as? String == "linear" && m["outputs"] as? Int == 5)
        // A stream of another width is refused.
        try daemon.send(key: "x", InputMessage(inputKind: .features, xdim: 2, steps: 1, seq: 0, features: [1, 2]))
        try daemon.send(key: "y", InputMessage(inputKind: .features, xdim: 5, steps: 1, seq: 0, features: [1, 2, 3, 4, 5]))
        let outs = try daemon.receive(count: 1)
        #expect(outs[0].key == "y")
        #expect((try daemon.control("stats")["rejected"] as? [String: Int])?["dimension"] == 1)
    }

    /// A text stream's created model is the bundled pre-trained one when the new-model settings
    /// are its shape (the defaults); other settings get a fresh model of their own shape.
    @Test func textStreamsStartFromTheBundledModelOfTheirShape() throws {
        let bundled = try DaemonHarness(arguments: ["--no-learn"], probeText: true)
        #expect(bundled.log.contains("created the model from the bundled pre-trained text model"))
        #expect(try bundled.control("model")["hidden"] as? [Int] == [64])
        #expect(bundled.terminate() == 0)
        let other = try DaemonHarness(arguments: ["--no-learn", "--new-model-hidden", "32"], probeText: true)
        #expect(other.log.contains("differ from the bundled text model"))
        #expect(try other.control("model")["hidden"] as? [Int] == [32])
        #expect(other.terminate() == 0)
    }

    @Test func sigtermFinishesInFlightWorkAndExitsZero() throws {
        let model = try featureModel()
        let daemon = try DaemonHarness(arguments: ["--model", model, "--no-learn", "--no-normalize", "--no-combine", "--no-combine"])
        // A long message, then a one-step message of another stream on the same pipe (so it is
        // read after the long one). When the short one's prediction is out, the long one has been
        // read and is in flight (or done); SIGTERM must not lose it.
        let long = rows(stream: 5, count: 20_000)
        try daemon.send(key: "long", features(long[...], seq: 0))
        try daemon.send(key: "short", features(long[0...0], seq: 0))
        // The long one is answered in chunks (all but the last with the more flag); the short one
        // is not held up behind it.
        var longSteps = 0, nextSeq: UInt64 = 0, lastChunk = false, short = false
        func take(_ m: (key: String, message: OutputMessage)) {
            if m.key == "short" { short = true; return }
            guard m.key == "long" else { return }   // a late probe's answer
            #expect(m.message.seq == nextSeq)
            nextSeq += UInt64(m.message.steps)
            longSteps += m.message.steps
            lastChunk = !m.message.flags.contains(.more)
        }
        while !short, let m = try daemon.receive() { take(m) }
        #expect(short && !lastChunk, "the short message waited for the whole long one")
        let stopped = Date()
        #expect(daemon.terminate() == 0)
        while !lastChunk, let m = try daemon.receive() { take(m) }
        #expect(longSteps == 20_000 && lastChunk, "the message in flight was not published before exit: \(daemon.log)")
        #expect(daemon.log.contains("serving loop stopped"))
        #expect(Date().timeIntervalSince(stopped) < 30)
    }

    /// `--log-format json`: every line the daemon writes, from start to stop and a rejected
    /// message between, is one JSON object with its level and message.
    @Test func jsonLogsAreOneObjectPerLine() throws {
        let model = try featureModel()
        let daemon = try DaemonHarness(arguments: ["--model", model, "--no-learn", "--log-format", "json"])
        try daemon.send(frames: [Array("bad".utf8), [1, 2, 3]])
        #expect(eventually(10) { (try? daemon.control("stats")["rejected_total"] as? Int) == 1 })
        #expect(daemon.terminate() == 0)
        let lines = daemon.log.split(separator: "\n").filter { !$0.isEmpty }
        #expect(lines.count >= 4, "\(daemon.log)")
        var levels: Set<String> = []
        for line in lines {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["message"] is String && object?["time"] is String, "not a JSON log line: \(line)")
            if let level = object?["level"] as? String { levels.insert(level) }
        }
        #expect(levels.contains("warning") && levels.contains("notice"), "\(levels)")
    }

    /// Text streams' context models could add up past the memory the process may use: no more
    /// text streams stay in memory than their full-size context models fit in half of it (said
    /// at start), and with a store the rest leave and come back exactly as they were.
    @Test func textStreamsInMemoryAreBoundedByTheirContextModels() throws {
        let many = try DaemonHarness(arguments: ["--no-learn", "--max-streams", "1000000"], probeText: true)
        let limit = try many.control("stats")["streams_limit"] as? Int ?? -1
        #expect(limit >= 1 && limit < 1_000_000, "\(limit)")
        #expect(many.log.contains("at most \(limit) text streams stay in memory") && many.log.contains("forgotten"), "\(many.log)")
        #expect(many.terminate() == 0)
        // 2 GiB holds 8,192 context models of 256 KiB: max-streams, 4,096, is the limit.
        let few = try DaemonHarness(arguments: ["--no-learn", "--max-streams", "4096", "--text-context-bytes", "262144",
                                                "--text-context-memory", "2147483648"], probeText: true)
        #expect(try few.control("stats")["streams_limit"] as? Int == 4096)
        #expect(!few.log.contains("text streams stay in memory"), "\(few.log)")
        #expect(few.terminate() == 0)

        // Six text streams, three rounds, lock-step: through three slots (the harness's probe
        // stream takes one of them) they leave for the store and come back, and what they publish
        // is what a daemon with room for all of them publishes, bit for bit — the context models
        // included, which learn with learning off.
        let text = Array("Now is the winter of our discontent made glorious summer by this sun of York; and all the clouds".utf8)
        // A message's predictions, in as many outputs as a busy machine's serving cycles split it into.
        func whole(_ d: DaemonHarness, _ key: String, _ m: InputMessage) throws -> [Float] {
            var out = try d.step(key: key, m)
            var values = out.values
            while out.flags.contains(.more), let next = try d.receive() {
                if next.key == key { out = next.message; values += out.values }
            }
            return values
        }
        func run(_ d: DaemonHarness) throws -> [String: [Float]] {
            var out: [String: [Float]] = [:]
            for round in 0..<3 {
                for s in 0..<6 {
                    let start = (round * 8 + s * 5) % (text.count - 8)
                    let m = InputMessage(inputKind: .text, xdim: 1, steps: 8, seq: UInt64(round * 8), tokens: text[start..<(start + 8)].map(UInt32.init))
                    out["t\(s)", default: []] += try whole(d, "t\(s)", m)
                }
            }
            return out
        }
        // 256 KiB context models (64 KiB is below the size of one), three of them in the budget.
        let base = ["--no-learn", "--text-context-bytes", "262144"]
        let roomy = try DaemonHarness(arguments: base + ["--state-dir", path("roomy")], probeText: true)
        let expected = try run(roomy)
        let tight = try DaemonHarness(arguments: base + ["--state-dir", path("tight"), "--text-context-memory", "786432"], probeText: true)
        #expect(tight.log.contains("at most 3 text streams stay in memory") && tight.log.contains("go to the store"), "\(tight.log)")
        let got = try run(tight)
        for s in 0..<6 { #expect(got["t\(s)"] == expected["t\(s)"] && got["t\(s)"]?.count == 3 * 8 * 256, "stream t\(s)") }
        let stats = try tight.control("stats")
        let evictions = (stats["evictions"] as? [String: Int])?["lru"] ?? 0
        let restored = (stats["store"] as? [String: Any])?["records_restored"] as? Int ?? 0
        #expect(stats["streams_limit"] as? Int == 3 && (stats["streams"] as? Int ?? 99) <= 3, "\(stats)")
        #expect(evictions >= 12 && restored >= 12, "\(stats)")
        // Lowered live: the streams beyond the new limit leave memory, and come back as they were.
        _ = try tight.control("set text-context-memory=524288")
        var lowered = try tight.control("stats")
        let deadline = Date().addingTimeInterval(10)
        while (lowered["streams"] as? Int ?? 99) > 2 && Date() < deadline { usleep(50_000); lowered = try tight.control("stats") }
        #expect(lowered["streams_limit"] as? Int == 2 && (lowered["streams"] as? Int ?? 99) <= 2, "\(lowered)")
        let next = InputMessage(inputKind: .text, xdim: 1, steps: 8, seq: 24, tokens: text[0..<8].map(UInt32.init))
        let after = try whole(tight, "t0", next)
        #expect(after == (try whole(roomy, "t0", next)), "t0 after the limit was lowered")
        #expect((try tight.control("stats")["store"] as? [String: Any])?["records_lost"] as? Int == 0)
        #expect(tight.terminate() == 0 && roomy.terminate() == 0)
    }

    /// An output message's odim is a u16: a model with more outputs is refused at start (with
    /// what to do), not served with headers that say a wrong width.
    @Test func modelsWiderThanTheOutputHeaderAreRefused() throws {
        let wide = path("wide.safetensors")
        let made = try runRecurd(["init", "--cell", "gru", "--hidden", "4", "--input-size", "1", "--output-size", "70000", "--head", "linear", "-o", wide])
        #expect(made.status == 0, "\(made.stderr)")
        let r = try runRecurd(["serve", "--model", wide, "--input", "ipc://\(path("in"))", "--output", "ipc://\(path("out"))", "--control", "", "--http", ""])
        #expect(r.status != 0 && r.stderr.contains("70000 outputs, more than an output message's odim (u16) can carry: give it at most 65535 outputs"),
                "\(r.stderr)")
    }

    @Test func configFileWithFlagsWinning() throws {
        let model = try featureModel()
        let config = path("recurd.toml")
        try """
            # output settings from the file; the flag below overrides the format
            output-format = "json"
            output-prefix = "pred."
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let daemon = try DaemonHarness(arguments: ["--config", config, "--model", model, "--no-learn", "--no-normalize", "--no-combine", "--output-format", "binary"])
        try daemon.send(key: "c", features(rows(stream: 0, count: 1)[0...0], seq: 0))
        var frames: [[UInt8]] = []
        while let f = try daemon.output.receiveFrames() { if f.first == Array("pred.c".utf8) { frames = f; break } }
        #expect(frames.count == 2)
        // Binary, magic 'P': the flag won over the file's json.
        #expect(frames.last?.first == 0x50)
        let ctl = try runRecurd(["ctl", "--connect", daemon.controlEndpoint, "model"])
        #expect(ctl.status == 0 && ctl.stdout.contains("\"cell\" : \"lstm\""), "\(ctl.stdout)")
    }

    @Test func badStartupIsOneClearLine() throws {
        let missing = try runRecurd(["serve", "--model", path("nope.safetensors"), "--http", ""])
        #expect(missing.status != 0 && missing.stderr.contains("no such model file"))
        let badConfig = path("bad.toml")
        try "max-streams = \"many\"\n".write(toFile: badConfig, atomically: true, encoding: .utf8)
        let r = try runRecurd(["serve", "--config", badConfig])
        #expect(r.status != 0 && r.stderr.contains("bad.toml: max-streams takes an integer, not \"many\""))
        let port = try runRecurd(["serve", "--input", "tcp://256.0.0.1:1", "--http", "", "--control", ""])
        #expect(port.status != 0 && port.stderr.contains("bind tcp://256.0.0.1:1"))
    }
}

/// `Type=notify`: READY=1 once serving, WATCHDOG=1 while it turns, STOPPING=1 at shutdown.
@Suite struct SystemdNotifyTests {
    @Test func notifiesReadyWatchdogAndStopping() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("notify").path
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(bound == 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
        }
        let daemon = try DaemonHarness(arguments: ["--no-learn"], http: false, environment: ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"])
        var messages: [String] = []
        while messages.count < 4, let m = receive() { messages.append(m) }
        #expect(messages.first?.hasPrefix("READY=1") == true, "\(messages)")
        #expect(messages.dropFirst().contains { $0.contains("WATCHDOG=1") }, "\(messages)")
        #expect(messages.contains { $0.contains("STATUS=") })
        #expect(daemon.terminate() == 0)
        var rest: [String] = []
        while let m = receive() { rest.append(m); if m.contains("STOPPING=1") { break } }
        #expect(rest.contains { $0.contains("STOPPING=1") }, "\(rest)")
    }
}
