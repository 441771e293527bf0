import Foundation
import RecurdModelFile
import RecurdStore
import RecurdTestSupport
import RecurdWire
import Testing
import ZeroMQ

/// DESIGN §6, state that lasts, with the real binary: a stream's record survives SIGTERM,
/// eviction, idle time and SIGHUP exactly; END and drop delete it.
@Suite(.serialized) struct StateEndToEndTests {
    /// Whether this machine lets an unprivileged process mount a tmpfs in namespaces of its own
    /// (not in some containers, nor where AppArmor restricts user namespaces): the full-disk
    /// tests need it.
    static let canMountInANamespace: Bool = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("recurd-ns-\(UUID().uuidString)").path
        guard (try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)) != nil else { return false }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let probe = try? runCommand("/usr/bin/unshare", ["-rm", "sh", "-c", #"mount -t tmpfs -o size=1m tmpfs "$1""#, "sh", dir])
        return probe?.status == 0
    }()

    /// This test's own directory, removed after it (Swift Testing makes a suite instance per test).
    let scratch = ScratchDirectory()
    var dir: URL { scratch.url }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// A 3-feature LSTM [16] with a linear head (next-step targets).
    func featureModel() throws -> String {
        let r = try runRecurd(["init", "--cell", "lstm", "--hidden", "16", "--input-size", "3", "--output-size", "3", "--head", "linear", "--seed", "7",
                               "-o", path("m.safetensors")])
        #expect(r.status == 0, "\(r.stderr)")
        return path("m.safetensors")
    }

    /// Deterministic readings of stream `s`: a drift plus two rhythms, in units far from 0 so
    /// that standardisation matters.
    func reading(stream s: Int, step t: Int) -> [Float] {
        (0..<3).map { j in Float(20 + 5 * Double(s) + sin(Double(t) * 0.37 + Double(j + s)) * 3 + cos(Double(t) * 0.11 * Double(j + 1)) + Double(t) * 0.01) }
    }

    func message(stream s: Int, step t: Int) -> InputMessage {
        InputMessage(inputKind: .features, xdim: 3, steps: 1, seq: UInt64(t), features: reading(stream: s, step: t))
    }

    /// Runs steps `range` of `streams` streams in lock step (one message per cycle, so learning
    /// does not depend on timing); returns each output.
    func run(_ daemon: DaemonHarness, streams: Int, steps range: Range<Int>) throws -> [String: [OutputMessage]] {
        var out: [String: [OutputMessage]] = [:]
        for t in range {
            for s in 0..<streams { out["s\(s)", default: []].append(try daemon.step(key: "s\(s)", message(stream: s, step: t))) }
        }
        return out
    }

    /// Two runs gave the same predictions, losses, flags and model versions, bit for bit.
    func expectIdentical(_ a: [String: [OutputMessage]], _ b: [String: [OutputMessage]], _ what: String) {
        #expect(a.keys.sorted() == b.keys.sorted())
        for key in a.keys.sorted() {
            let x = a[key]!, y = b[key] ?? []
            #expect(x.count == y.count, "\(what) \(key): \(x.count) vs \(y.count) outputs")
            for (i, (m, n)) in zip(x, y).enumerated() {
                let same = m.values == n.values && m.flags == n.flags && m.modelVersion == n.modelVersion && m.seq == n.seq
                    && zip(m.losses, n.losses).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
                #expect(same, "\(what) \(key) step \(i): \(m) vs \(n)")
                if !same { return }
            }
        }
    }

    func flags(learning: Bool) throws -> [String] {
        ["--model", try featureModel(), "--checkpoint-interval", "3600"]
            + (learning ? ["--sync-learning", "--k1", "4", "--k2", "8", "--lr", "0.01"] : ["--no-learn"])
    }

    @Test(arguments: [false, true])
    func sigtermThenRestartContinuesExactly(learning: Bool) throws {
        let flags = try flags(learning: learning)
        let streams = 3, steps = 40, cut = 23
        let whole = try DaemonHarness(arguments: flags + ["--state-dir", path("whole")])
        let expected = try run(whole, streams: streams, steps: 0..<steps)
        #expect(whole.terminate() == 0)

        let first = try DaemonHarness(arguments: flags + ["--state-dir", path("cut")])
        var got = try run(first, streams: streams, steps: 0..<cut)
        let versionAtStop = try first.control("stats")["model_version"] as? Int
        #expect(first.terminate() == 0, "SIGTERM must exit 0: \(first.log)")
        #expect(first.log.contains("checkpoint written"))
        // A clean stop leaves the whole store in its file, the journal merged into it.
        let wal = (try? FileManager.default.attributesOfItem(atPath: path("cut") + "/streams.sqlite-wal"))?[.size] as? Int ?? 0
        #expect(wal == 0, "\(wal) bytes still in the journal after a clean stop")
        let second = try DaemonHarness(arguments: flags + ["--state-dir", path("cut")])
        let restarted = try second.control("stats")
        #expect(restarted["model_version"] as? Int == versionAtStop)
        // The same --model as before: what the checkpoint learnt is no news (no warning).
        #expect(second.log.contains("model from the newest checkpoint") && !second.log.contains("not the model this state directory"), "\(second.log)")
        // The store's size is what the restart found, before anything is written.
        #expect(((restarted["store"] as? [String: Any])?["bytes"] as? Int ?? 0) > 0, "\(restarted)")
        // `stream KEY` reads a stream in the store back to answer: where a producer continues.
        let s0 = try second.control("stream s0")
        #expect(s0["ok"] as? Bool == true && s0["next_seq"] as? Int == cut && s0["steps"] as? Int == cut, "\(s0)")
        let rest = try run(second, streams: streams, steps: cut..<steps)
        for (k, v) in rest { got[k, default: []] += v }
        // The first step after the restart is no new stream: flag clear, its loss scored.
        for s in 0..<streams {
            let m = rest["s\(s)"]![0]
            #expect(!m.flags.contains(.newState) && m.losses[0].isFinite, "s\(s) after restart: \(m)")
        }
        expectIdentical(expected, got, "restarted")
        if learning { #expect((try second.control("stats")["model_version"] as? Int ?? 0) > versionAtStop ?? 0) }
        #expect(second.terminate() == 0)
    }

    /// `drop` forgets a stream that is only in the store (evicted), without reading it back: it
    /// starts afresh when it speaks again. `reset` of such a stream says what to do instead.
    @Test func dropForgetsAStreamInTheStore() throws {
        let daemon = try DaemonHarness(arguments: ["--model", try featureModel(), "--no-learn", "--state-dir", path("dropped"),
                                                   "--max-streams", "2", "--max-batch", "1"])
        _ = try run(daemon, streams: 3, steps: 0..<3)   // 3 streams in 2 slots: s0 is in the store
        let reset = try daemon.control("reset s0")
        #expect(reset["ok"] as? Bool == false && (reset["error"] as? String ?? "").contains("zero-step RESET"), "\(reset)")
        let dropped = try daemon.control("drop s0")
        #expect(dropped["ok"] as? Bool == true && dropped["dropped"] as? String == "s0" && (dropped["note"] as? String ?? "").contains("store"),
                "\(dropped)")
        // Asked about, the store has nothing for it any more, and asking leaves nothing behind.
        let inMemory = try daemon.control("stats")["streams"] as? Int
        let gone = try daemon.control("stream s0")
        #expect(gone["ok"] as? Bool == false && gone["error"] as? String == "no stream 's0' (not in memory, nor in the store)", "\(gone)")
        #expect(try daemon.control("stats")["streams"] as? Int == inMemory)
        // Its next message finds nothing in the store: a new stream (flag set, no loss).
        let back = try daemon.step(key: "s0", message(stream: 0, step: 3))
        #expect(back.flags.contains(.newState) && back.losses[0].isNaN, "\(back)")
        #expect(daemon.terminate() == 0)
    }

    /// The checkpoint-age gauge counts from start until the state directory is first brought up
    /// to date, so that an alert on it fires when that never happens; a flush starts it over.
    @Test func checkpointAgeCountsFromStartUntilTheFirstFlush() throws {
        let daemon = try DaemonHarness(arguments: try flags(learning: false) + ["--state-dir", path("age")])
        _ = try run(daemon, streams: 1, steps: 0..<2)
        func age() throws -> Double {
            let (_, text) = try daemon.http("/metrics")
            let line = text.split(separator: "\n").first { $0.hasPrefix("recurd_checkpoint_age_seconds ") }
            return line.flatMap { Double($0.split(separator: " ")[1]) } ?? -1
        }
        Thread.sleep(forTimeInterval: 2.5)
        let before = try age()
        #expect(before >= 1, "no flush yet, yet the age is \(before)")
        #expect(try daemon.control("checkpoint")["ok"] as? Bool == true)
        var after = before
        for _ in 0..<40 where after >= before {
            Thread.sleep(forTimeInterval: 0.1)
            after = try age()
        }
        #expect(after >= 0 && after < before, "after a checkpoint: \(after), before: \(before)")
        #expect(daemon.terminate() == 0)
    }

    @Test(arguments: [false, true])
    func evictedStreamsComeBackExactly(learning: Bool) throws {
        let flags = try flags(learning: learning)
        let streams = 8, steps = 24
        let roomy = try DaemonHarness(arguments: flags + ["--state-dir", path("roomy")])
        let expected = try run(roomy, streams: streams, steps: 0..<steps)
        let tight = try DaemonHarness(arguments: flags + ["--state-dir", path("tight"), "--max-streams", "3", "--max-batch", "2"])
        let got = try run(tight, streams: streams, steps: 0..<steps)
        expectIdentical(expected, got, "evicted")
        let stats = try tight.control("stats")
        let evictions = (stats["evictions"] as? [String: Int])?["lru"] ?? 0
        let restored = (stats["store"] as? [String: Any])?["records_restored"] as? Int ?? 0
        #expect(evictions >= streams * (steps - 1) && restored >= streams * (steps - 1), "\(stats)")
        #expect(stats["streams"] as? Int ?? 99 <= 3)
    }

    /// Text streams' records carry their context models (8 MiB each here): a checkpoint of forty
    /// of them is 320 MiB of records, which the store used to take in one piece and, past its
    /// 256 MiB bound, partly drop (`records_lost`) with a healthy disk. Now the flush hands them
    /// over a few at a time and the store commits on the way: every one is written.
    @Test func aCheckpointOfManyTextStreamsLosesNone() throws {
        let daemon = try DaemonHarness(arguments: ["--no-learn", "--text-context-bytes", "8388608", "--state-dir", path("texts")], probeText: true)
        let text = Array("It is a truth universally acknowledged, that a single man in possession of a good fortune".utf8)
        for s in 0..<40 {
            let start = (s * 7) % (text.count - 16)
            _ = try daemon.step(key: "t\(s)", InputMessage(inputKind: .text, xdim: 1, steps: 16, seq: 0, tokens: text[start..<(start + 16)].map(UInt32.init)))
        }
        let ack = try daemon.control("checkpoint")
        #expect(ack["ok"] as? Bool == true, "\(ack)")
        let store = try daemon.control("stats")["store"] as? [String: Any] ?? [:]
        #expect(store["records_lost"] as? Int == 0 && (store["streams_stored"] as? Int ?? 0) >= 40, "\(store)")
        // Changed again, then stopped: the final flush writes all forty (320 MiB, a few streams a
        // turn), and a restart finds every one at 32 steps.
        for s in 0..<40 {
            let start = (s * 3) % (text.count - 16)
            _ = try daemon.step(key: "t\(s)", InputMessage(inputKind: .text, xdim: 1, steps: 16, seq: 16, tokens: text[start..<(start + 16)].map(UInt32.init)))
        }
        #expect(daemon.terminate() == 0)
        #expect(!daemon.log.contains("final flush did not finish"), "\(daemon.log)")
        let again = try DaemonHarness(arguments: ["--no-learn", "--text-context-bytes", "8388608", "--state-dir", path("texts")], probeText: true)
        for s in [0, 17, 39] { #expect(try again.control("stream t\(s)")["steps"] as? Int == 32, "t\(s)") }
        #expect(again.terminate() == 0)
    }

    @Test func idleStreamsGoToTheStoreAndComeBack() throws {
        let flags = try flags(learning: true)
        let whole = try DaemonHarness(arguments: flags + ["--state-dir", path("awake")])
        let expected = try run(whole, streams: 2, steps: 0..<20)
        let sleepy = try DaemonHarness(arguments: flags + ["--state-dir", path("sleepy"), "--idle-timeout", "1"])
        var got = try run(sleepy, streams: 2, steps: 0..<10)
        let deadline = Date().addingTimeInterval(10)
        while (try sleepy.control("stats")["streams"] as? Int ?? 1) > 0 && Date() < deadline { usleep(100_000) }
        let stats = try sleepy.control("stats")
        #expect(stats["streams"] as? Int == 0 && ((stats["evictions"] as? [String: Int])?["idle"] ?? 0) >= 2, "\(stats)")
        for (k, v) in try run(sleepy, streams: 2, steps: 10..<20) { got[k, default: []] += v }
        expectIdentical(expected, got, "idle")
    }

    @Test func endAndDropDeleteTheStoredStream() throws {
        let daemon = try DaemonHarness(arguments: try flags(learning: false) + ["--state-dir", path("gone"), "--max-streams", "3", "--max-batch", "2"])
        _ = try run(daemon, streams: 4, steps: 0..<3)   // four streams through three slots: one is in the store
        // END: the stream is finished everywhere; speaking again it is new.
        _ = try daemon.step(key: "s0", InputMessage(inputKind: .features, flags: [.end], xdim: 3, steps: 1, seq: 3, features: reading(stream: 0, step: 3)))
        _ = try daemon.control("checkpoint")
        let again = try daemon.step(key: "s0", message(stream: 0, step: 0))
        #expect(again.flags.contains(.newState) && again.losses[0].isNaN)
        // drop: likewise.
        _ = try daemon.step(key: "s1", message(stream: 1, step: 3))   // brings s1 back in memory if it was out
        #expect(try daemon.control("drop s1")["ok"] as? Bool == true)
        _ = try daemon.control("checkpoint")
        let dropped = try daemon.step(key: "s1", message(stream: 1, step: 0))
        #expect(dropped.flags.contains(.newState))
        let stats = try daemon.control("stats")
        let deleted = stats["deleted"] as? [String: Int] ?? [:]
        #expect((deleted["end"] ?? 0) >= 1 && (deleted["drop"] ?? 0) >= 1, "\(stats)")
    }

    @Test func sighupReloadsSettingsAndKeepsState() throws {
        let config = path("recurd.toml")
        try "lr = 0.005\nlearn = true\nmax-batch = 64\n".write(toFile: config, atomically: true, encoding: .utf8)
        let notifyPath = path("notify")
        let notify = try NotifySocket(path: notifyPath)
        let daemon = try DaemonHarness(arguments: ["--config", config, "--model", try featureModel(), "--state-dir", path("hup")],
                                       environment: ["NOTIFY_SOCKET": notifyPath])
        _ = try run(daemon, streams: 1, steps: 0..<10)
        #expect(try daemon.control("stats")["lr"] as? Double == 0.005)
        try "lr = 0.002\nlearn = false\nmax-batch = 32\n".write(toFile: config, atomically: true, encoding: .utf8)
        notify.drain()
        daemon.signal(SIGHUP)
        var stats = try daemon.control("stats")
        let deadline = Date().addingTimeInterval(10)
        while stats["lr"] as? Double != 0.002 && Date() < deadline { usleep(50_000); stats = try daemon.control("stats") }
        #expect(stats["lr"] as? Double == 0.002 && stats["learning"] as? Bool == false, "\(stats)")
        #expect(daemon.waitForExit(timeout: 0) == nil, "SIGHUP ended the daemon: \(daemon.log)")
        #expect(try daemon.control("stream s0")["steps"] as? Int == 10)
        #expect(daemon.log.contains("needs a restart") && daemon.log.contains("setting=max-batch"), "\(daemon.log)")
        let messages = notify.receive(until: "READY=1")
        #expect(messages.contains { $0.contains("RELOADING=1") && $0.contains("MONOTONIC_USEC=") }, "\(messages)")
        #expect(messages.last?.contains("READY=1") == true, "\(messages)")
        // The stream carries on: not new, its loss scored.
        let next = try daemon.step(key: "s0", message(stream: 0, step: 10))
        #expect(!next.flags.contains(.newState) && next.losses[0].isFinite)
        // A config that does not read keeps the running settings.
        try "lr = 5\n".write(toFile: config, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        let later = Date().addingTimeInterval(10)
        while !daemon.log.contains("keeping the running ones") && Date() < later { usleep(50_000) }
        #expect(daemon.log.contains("keeping the running ones"))
        #expect(try daemon.control("stats")["lr"] as? Double == 0.002)
        // `set` checks values as start-up does.
        #expect(try daemon.control("set lr=1e30")["ok"] as? Bool == false)
        #expect(try daemon.control("set k1=3")["ok"] as? Bool == false)
        #expect(try daemon.control("set idle-timeout=120")["ok"] as? Bool == true)
        #expect(daemon.terminate() == 0)
    }

    /// `kill -9` at random moments under load with learning on: every time, the daemon comes back
    /// with a store and checkpoint that open, at the version of the newest checkpoint on disk.
    @Test func killNineAtRandomMomentsLeavesStateThatOpens() throws {
        let model = try featureModel()
        let state = path("crash")
        var rng = SystemRandomNumberGenerator()
        var restarts = 0
        for round in 0..<20 {
            let daemon = try DaemonHarness(arguments: ["--model", model, "--state-dir", state, "--checkpoint-interval", "1", "--k1", "2", "--k2", "4",
                                                       "--trainer-priority", "normal"])
            // A version at start that equals the newest checkpoint's (none on the first round).
            let newest = CheckpointFiles.newestVersion(in: state)
            let started = try daemon.control("stats")["model_version"] as? Int ?? -1
            #expect(started == newest ?? 0, "round \(round): started at version \(started), newest checkpoint \(String(describing: newest))")
            if round > 0 { restarts += 1 }
            // Load from another thread until the kill.
            let stop = LockedFlag()
            let base = round * 1_000_000
            let endpoint = daemon.inputEndpoint
            let sender = Thread {
                guard let context = try? ZMQContext(), let push = try? ZMQSocket(context: context, type: .push) else { return }
                try? push.setSendTimeout(milliseconds: 100)
                try? push.connect(endpoint)
                var t = 0
                while !stop.isSet {
                    for s in 0..<20 {
                        let m = InputMessage(inputKind: .features, xdim: 3, steps: 1, seq: UInt64(base + t), features: self.reading(stream: s, step: t))
                        _ = try? push.send(frames: [Array("k\(s)".utf8), InputEncoder.encode(m)])
                    }
                    t += 1
                    if t % 50 == 0 { usleep(1_000) }
                }
            }
            sender.start()
            usleep(UInt32.random(in: 200_000...1_200_000, using: &rng))
            daemon.signal(SIGKILL)
            stop.set()
            #expect(daemon.waitForExit(timeout: 10) != nil)
            while !sender.isFinished { usleep(1_000) }
        }
        #expect(restarts == 19)
        // The store opens and holds the streams.
        let last = try DaemonHarness(arguments: ["--model", model, "--state-dir", state])
        let stats = try last.control("stats")
        #expect(((stats["store"] as? [String: Any])?["streams_stored"] as? Int ?? 0) >= 1, "\(stats)")
        #expect(last.terminate() == 0)
    }

    /// `--model` inside the state directory seeds it on first boot; afterwards the newest
    /// checkpoint wins; a model of another architecture is refused until `--reset-model`.
    @Test func modelSeedsTheStateDirectoryAndOtherArchitecturesNeedAReset() throws {
        let state = path("seed")
        let inside = state + "/model.safetensors"
        let first = try DaemonHarness(arguments: ["--model", inside, "--state-dir", state])   // no file yet: created from the first stream
        _ = try run(first, streams: 1, steps: 0..<5)
        let cp = try first.control("checkpoint")
        #expect(cp["ok"] as? Bool == true, "\(cp)")
        #expect(first.terminate() == 0)
        #expect(FileManager.default.fileExists(atPath: inside))
        let again = try DaemonHarness(arguments: ["--model", inside, "--state-dir", state])
        let m = try again.control("model")
        #expect(m["cell"] as? String == "lstm" && m["hidden"] as? [Int] == [64], "\(m)")
        #expect(again.terminate() == 0)
        // Another architecture is refused, with what to do.
        let gru = path("gru.safetensors")
        #expect(try runRecurd(["init", "--cell", "gru", "--hidden", "8", "--input-size", "3", "--output-size", "3", "--head", "linear", "-o", gru]).status == 0)
        let refused = try runRecurd(["serve", "--model", gru, "--state-dir", state, "--http", "", "--control", "", "--input", "ipc://\(path("x-in"))",
                                     "--output", "ipc://\(path("x-out"))"])
        #expect(refused.status != 0 && refused.stderr.contains("architecture differs") && refused.stderr.contains("--reset-model"), "\(refused.stderr)")
        // --reset-model starts over from it and sets the old state aside.
        let reset = try DaemonHarness(arguments: ["--model", gru, "--state-dir", state, "--reset-model"])
        let n = try reset.control("model")
        #expect(n["cell"] as? String == "gru" && n["version"] as? Int == 0, "\(n)")
        #expect(reset.terminate() == 0)
        let retired = try FileManager.default.contentsOfDirectory(atPath: state).filter { $0.hasPrefix("retired-") }
        #expect(retired.count == 1)
        // A damaged newest checkpoint is skipped, named in the log, for the one before.
        let newest = try FileManager.default.contentsOfDirectory(atPath: state + "/checkpoints").sorted().last!
        let file = state + "/checkpoints/" + newest
        let good = try Data(contentsOf: URL(fileURLWithPath: file))
        var bytes = [UInt8](good)
        bytes[bytes.count - 3] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        // The same damaged file given as --model: its recorded checksum refuses it.
        let damaged = try runRecurd(["serve", "--model", file, "--state-dir", path("elsewhere"), "--http", "", "--control", "",
                                     "--input", "ipc://\(path("z-in"))", "--output", "ipc://\(path("z-out"))"])
        #expect(damaged.status != 0 && damaged.stderr.contains("the file is damaged"), "\(damaged.stderr)")
        // No checkpoint reads back: refused, rather than a model the stored streams were not made by.
        let none = try runRecurd(["serve", "--model", gru, "--state-dir", state, "--http", "", "--control", "",
                                  "--input", "ipc://\(path("z-in"))", "--output", "ipc://\(path("z-out"))"])
        #expect(none.status != 0 && none.stderr.contains("none of the 1 checkpoints") && none.stderr.contains("--reset-model"), "\(none.stderr)")
        // An older good one beside it: that one is served.
        let version = newest.dropFirst("model-".count).prefix { $0 != "-" }
        try good.write(to: URL(fileURLWithPath: state + "/checkpoints/model-\(version)-1.safetensors"))
        let skipped = try DaemonHarness(arguments: ["--model", gru, "--state-dir", state])
        #expect(skipped.log.contains("skipping a checkpoint") && skipped.log.contains(newest), "\(skipped.log)")
        #expect(!skipped.log.contains("not the model this state directory started from"), "\(skipped.log)")
        #expect(skipped.terminate() == 0)
        // The same shape with other weights: the checkpoint still wins, and the log says so. The
        // state directory's own link as --model is no news.
        let other = path("gru-other.safetensors")
        #expect(try runRecurd(["init", "--cell", "gru", "--hidden", "8", "--input-size", "3", "--output-size", "3", "--head", "linear", "--seed", "7",
                               "-o", other]).status == 0)
        let swapped = try DaemonHarness(arguments: ["--model", other, "--state-dir", state])
        #expect(swapped.log.contains("not the model this state directory started from") && swapped.log.contains("--reset-model"), "\(swapped.log)")
        let served = try swapped.control("model")
        #expect((served["checkpoint"] as? String)?.contains("/checkpoints/model-") == true && served["file"] as? String == other, "\(served)")
        #expect(swapped.terminate() == 0)
        let link = try DaemonHarness(arguments: ["--model", state + "/model.safetensors", "--state-dir", state])
        #expect(!link.log.contains("not the model this state directory started from"), "\(link.log)")
        #expect(link.terminate() == 0)
        // An operator's model copied to the link's name would be replaced by the next checkpoint:
        // refused, the file untouched.
        let own = path("own")
        try FileManager.default.createDirectory(atPath: own, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: other, toPath: own + "/model.safetensors")
        let foreign = try runRecurd(["serve", "--model", own + "/model.safetensors", "--state-dir", own, "--http", "", "--control", "",
                                     "--input", "ipc://\(path("y-in"))", "--output", "ipc://\(path("y-out"))"])
        #expect(foreign.status != 0 && foreign.stderr.contains("is a regular file") && foreign.stderr.contains("move the file out of the state directory"),
                "\(foreign.stderr)")
        let attributes = try FileManager.default.attributesOfItem(atPath: own + "/model.safetensors")
        #expect(attributes[.type] as? FileAttributeType == .typeRegular)
        #expect(FileManager.default.contentsEqual(atPath: own + "/model.safetensors", andPath: other))
    }

    /// A stored record that does not decompress: the stream starts afresh, and it is counted.
    @Test func anUnreadableRecordIsCounted() throws {
        let flags = try flags(learning: false)
        let state = path("damaged")
        let first = try DaemonHarness(arguments: flags + ["--state-dir", state])
        _ = try run(first, streams: 2, steps: 0..<3)
        #expect(first.terminate() == 0)
        let store = try StreamStore(path: state + "/streams.sqlite")
        try store.connection.execute("UPDATE streams SET encoding = 1, record = x'00010203' WHERE key = x'7330'")   // "s0"
        let second = try DaemonHarness(arguments: flags + ["--state-dir", state])
        let s0 = try second.step(key: "s0", message(stream: 0, step: 3))
        let s1 = try second.step(key: "s1", message(stream: 1, step: 3))
        #expect(s0.flags.contains(.newState) && !s1.flags.contains(.newState), "\(s0) \(s1)")
        let stored = try second.control("stats")["store"] as? [String: Any] ?? [:]
        #expect(stored["records_unreadable"] as? Int == 1 && stored["records_restored"] as? Int == 1, "\(stored)")
        #expect(second.log.contains("does not decompress"))
        #expect(second.terminate() == 0)
    }

    /// SIGTERM while the store waits out its retry back-off after a full disk, with room again:
    /// the shutdown writes every record instead of counting them lost.
    @Test(.enabled(if: StateEndToEndTests.canMountInANamespace, "needs unprivileged user and mount namespaces (unshare -rm)"))
    func sigtermAfterAFullDiskWritesEverything() throws {
        let state = path("refilled")
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let launcher = ["/usr/bin/unshare", "-rm", "sh", "-c", #"mount -t tmpfs -o size=8m tmpfs "$RECURD_STATE" && exec "$@""#, "sh"]
        let daemon = try DaemonHarness(arguments: ["--model", try featureModel(), "--state-dir", state, "--checkpoint-interval", "1", "--no-learn"],
                                       environment: ["RECURD_STATE": state], launcher: launcher)
        var t = 0
        func serve(_ n: Int) throws {
            for _ in 0..<n {
                for s in 0..<3 { _ = try daemon.step(key: "s\(s)", message(stream: s, step: t)) }
                t += 1
            }
        }
        try serve(5)
        let filler = "/proc/\(daemon.pid)/root\(state)/filler"
        _ = try runCommand("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=64k", "count=1000"])
        // Two failed writes: the back-off is then at least 2 s.
        let deadline = Date().addingTimeInterval(20)
        while (try daemon.control("stats")["store"] as? [String: Any])?["write_failures"] as? Int ?? 0 < 2 && Date() < deadline {
            try serve(1)
            usleep(100_000)
        }
        #expect(unlink(filler) == 0)
        #expect(daemon.terminate() == 0)
        #expect(daemon.log.contains("cannot write stream records") && !daemon.log.contains("they are lost"), "\(daemon.log)")
    }

    /// A full disk and a read-only one: serving goes on, the failures are logged and counted,
    /// the previous checkpoint stays whole, and the store catches up once the disk is back. The
    /// state directory is a small tmpfs in a mount namespace of the daemon's own (`unshare`).
    @Test(.enabled(if: StateEndToEndTests.canMountInANamespace, "needs unprivileged user and mount namespaces (unshare -rm)"))
    func fullAndReadOnlyDisksKeepServingAndTheLastCheckpoint() throws {
        let state = path("small")
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let launcher = ["/usr/bin/unshare", "-rm", "sh", "-c", #"mount -t tmpfs -o size=8m tmpfs "$RECURD_STATE" && exec "$@""#, "sh"]
        let daemon = try DaemonHarness(arguments: ["--model", try featureModel(), "--state-dir", state, "--checkpoint-interval", "1",
                                                   "--trainer-priority", "normal", "--k1", "2", "--k2", "4"],
                                       environment: ["RECURD_STATE": state], launcher: launcher)
        func store() throws -> [String: Any] { try daemon.control("stats")["store"] as? [String: Any] ?? [:] }
        var t = 0
        func serve(_ n: Int) throws {
            for _ in 0..<n {
                for s in 0..<3 { let m = try daemon.step(key: "s\(s)", message(stream: s, step: t)); #expect(m.steps == 1) }
                t += 1
            }
        }
        try serve(30)
        let good = try daemon.control("checkpoint")
        #expect(good["ok"] as? Bool == true, "\(good)")
        let goodFile = try #require(good["file"] as? String)
        // Inside the daemon's namespace the state directory is the tmpfs; reach it through /proc.
        let inside = "/proc/\(daemon.pid)/root\(state)"
        let filler = inside + "/filler"

        // Disk full.
        let dd = try runCommand("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=64k", "count=1000"])
        #expect(dd.status != 0, "dd filled an 8 MiB disk with 64 MB: \(dd.stderr)")
        try serve(30)   // serving goes on
        let full = try daemon.control("checkpoint")
        #expect(full["ok"] as? Bool == false && (full["error"] as? String ?? "").contains("No space left"), "\(full)")
        var deadline = Date().addingTimeInterval(10)
        while (try store()["write_failures"] as? Int ?? 0) == 0 && Date() < deadline { try serve(2); usleep(200_000) }
        let failing = try store()
        #expect((failing["write_failures"] as? Int ?? 0) >= 1 && (failing["checkpoint_failures"] as? Int ?? 0) >= 1, "\(failing)")
        // The last good checkpoint is still whole.
        #expect(CheckpointProbe.readsBack(inside + "/checkpoints/" + (goodFile as NSString).lastPathComponent))
        let (_, metrics) = try daemon.http("/metrics")
        #expect(metrics.contains("recurd_checkpoint_failures_total") && !metrics.contains("recurd_checkpoint_failures_total 0"))

        // Room again: the store catches up and checkpoints work.
        #expect(unlink(filler) == 0)
        deadline = Date().addingTimeInterval(40)
        var recovered = try daemon.control("checkpoint")
        while recovered["ok"] as? Bool != true && Date() < deadline { usleep(500_000); recovered = try daemon.control("checkpoint") }
        #expect(recovered["ok"] as? Bool == true, "\(recovered)")

        // Read-only: a read-only filesystem mounted over the state directory, so every file the
        // daemon opens, creates or renames there fails with EROFS (a remount of the tmpfs itself
        // is refused while the store's files are open). The store's already-open files stay
        // writable in this simulation; the full disk above is what fails the store's writes.
        let nsenter = ["-t", "\(daemon.pid)", "-U", "-m", "--preserve-credentials"]
        let ro = try runCommand("/usr/bin/nsenter", nsenter + ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", state])
        #expect(ro.status == 0, "\(ro.stderr)")
        try serve(20)
        // Another filesystem over the state directory: what is written now would not be found by
        // the next start, and /healthz says so (from the daemon's next once-a-second check).
        var unhealthy = Date().addingTimeInterval(5)
        while try daemon.http("/healthz").0 == 200 && Date() < unhealthy { usleep(100_000) }
        #expect(try daemon.http("/healthz").0 == 503 && daemon.log.contains("was replaced by another directory"), "\(daemon.log)")
        let readOnly = try daemon.control("checkpoint")
        #expect(readOnly["ok"] as? Bool == false && (readOnly["error"] as? String ?? "").contains("Read-only"), "\(readOnly)")
        #expect((try store()["checkpoint_failures"] as? Int ?? 0) >= 2)
        let rw = try runCommand("/usr/bin/nsenter", nsenter + ["umount", state])
        #expect(rw.status == 0, "\(rw.stderr)")
        unhealthy = Date().addingTimeInterval(5)
        while try daemon.http("/healthz").0 != 200 && Date() < unhealthy { usleep(100_000) }
        #expect(try daemon.http("/healthz").0 == 200)
        #expect(CheckpointProbe.readsBack(inside + "/model.safetensors"))
        deadline = Date().addingTimeInterval(40)
        recovered = try daemon.control("checkpoint")
        while recovered["ok"] as? Bool != true && Date() < deadline { usleep(500_000); recovered = try daemon.control("checkpoint") }
        #expect(recovered["ok"] as? Bool == true, "\(recovered)")
        try serve(5)
        #expect(daemon.terminate() == 0, "\(daemon.log)")
    }

    /// The state directory is guarded while a daemon runs: a second daemon is kept out even when
    /// the lock file is deleted; SIGUSR1/SIGUSR2/SIGALRM (which end a process by default) are
    /// logged and ignored; a state directory moved away makes `/healthz` unhealthy, with an error
    /// logged, until it is back; and a restart that finds checkpoints but no stream store says so.
    @Test func theStateDirectoryIsGuarded() throws {
        let state = path("guarded")
        let model = try featureModel()
        let daemon = try DaemonHarness(arguments: ["--model", model, "--no-learn", "--state-dir", state])
        _ = try daemon.step(key: "a", message(stream: 0, step: 0))

        try FileManager.default.removeItem(atPath: state + "/lock")
        // Under `timeout`: a second daemon let in would serve on instead of exiting.
        let second = try runCommand("/usr/bin/timeout", ["20", recurdBinary.path, "serve", "--model", model, "--state-dir", state, "--input", "ipc://\(path("in2"))",
                                    "--output", "ipc://\(path("out2"))", "--control", "", "--http", ""])
        #expect(second.status != 0 && second.stderr.contains("in use by another recurd"), "\(second.stderr)")

        for s in [SIGUSR1, SIGUSR2, SIGALRM] { daemon.signal(s) }
        usleep(300_000)
        #expect(try daemon.step(key: "a", message(stream: 0, step: 1)).steps == 1, "the daemon must survive SIGUSR1/2 and SIGALRM")
        #expect(eventually(10) { daemon.log.contains("SIGUSR1 ignored") && daemon.log.contains("SIGUSR2 ignored") && daemon.log.contains("SIGALRM ignored") },
                "\(daemon.log)")

        #expect(try daemon.http("/healthz").0 == 200)
        #expect(rename(state, state + ".moved") == 0)
        var deadline = Date().addingTimeInterval(10)
        while try daemon.http("/healthz").0 == 200 && Date() < deadline { usleep(100_000) }
        #expect(try daemon.http("/healthz").0 == 503)
        #expect(daemon.log.contains("the state directory \(state) is gone"), "\(daemon.log)")
        _ = try daemon.step(key: "a", message(stream: 0, step: 2))   // serving goes on
        #expect(rename(state + ".moved", state) == 0)
        deadline = Date().addingTimeInterval(10)
        while try daemon.http("/healthz").0 != 200 && Date() < deadline { usleep(100_000) }
        #expect(try daemon.http("/healthz").0 == 200)
        #expect(daemon.log.contains("the state directory is in place again"), "\(daemon.log)")
        // The store's file deleted from under it: SQLite would write on into the unlinked file.
        let store = state + "/streams.sqlite"
        #expect(rename(store, store + ".aside") == 0)
        deadline = Date().addingTimeInterval(10)
        while try daemon.http("/healthz").0 == 200 && Date() < deadline { usleep(100_000) }
        #expect(try daemon.http("/healthz").0 == 503 && daemon.log.contains("the stream store \(store) is gone"), "\(daemon.log)")
        #expect(rename(store + ".aside", store) == 0)
        deadline = Date().addingTimeInterval(10)
        while try daemon.http("/healthz").0 != 200 && Date() < deadline { usleep(100_000) }
        #expect(daemon.terminate() == 0)

        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: state + "/streams.sqlite" + suffix) }
        let restarted = try DaemonHarness(arguments: ["--model", model, "--no-learn", "--state-dir", state])
        #expect(restarted.log.contains("has checkpoints but no stream store"), "\(restarted.log)")
        #expect(restarted.terminate() == 0)
    }
}

/// Reads model versions of the checkpoints on disk, as a user would.
enum CheckpointFiles {
    static func newestVersion(in state: String) -> Int? {
        let dir = (state as NSString).appendingPathComponent("checkpoints")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.compactMap { name -> Int? in
            guard name.hasPrefix("model-") else { return nil }
            return Int(name.dropFirst(6).prefix { $0 != "-" })
        }.max()
    }
}

/// A flag another thread sets.
final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// A `$NOTIFY_SOCKET` that collects what the daemon tells systemd.
final class NotifySocket {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard bound == 0 else { throw HarnessError("cannot bind \(path)") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }

    /// Messages up to and including the first containing `needle` (5 s each at most).
    func receive(until needle: String) -> [String] {
        var out: [String] = []
        while let m = receive() {
            out.append(m)
            if m.contains(needle) { break }
        }
        return out
    }

    /// Discards what is waiting.
    func drain() {
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        while receive() != nil {}
        timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }
}

/// Whether a checkpoint file reads back whole (checksum and tensors), as start-up reads it.
enum CheckpointProbe {
    static func readsBack(_ file: String) -> Bool {
        do { _ = try CheckpointStore.read(file); return true } catch { Issue.record("\(file): \(error)"); return false }
    }
}

/// Runs a system command and waits for it.
func runCommand(_ executable: String, _ arguments: [String]) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}
