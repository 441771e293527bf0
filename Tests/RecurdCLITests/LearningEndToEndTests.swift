import Foundation
import RecurdModelFile
import RecurdNumerics
import RecurdTestSupport
import RecurdWire
import Testing

/// Online learning in the running daemon, against `recurd fit` and by its own rules.
@Suite(.serialized) struct LearningEndToEndTests {
    /// This test's own directory, removed after it (Swift Testing makes a suite instance per test).
    let scratch = ScratchDirectory()
    var dir: URL { scratch.url }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// The first `n` values of the committed z-scored machine-temperature fixture.
    func series(_ n: Int) throws -> [Float] {
        let text = try String(contentsOf: FixturePaths.reference.appendingPathComponent("data/features1.csv"), encoding: .utf8)
        return text.split(separator: "\n").dropFirst().prefix(n).map { Float($0.split(separator: ",")[1])! }
    }

    func weights(_ file: String) throws -> [Float] {
        try ModelFile.decode([UInt8](Data(contentsOf: URL(fileURLWithPath: file))), file: file).model.weights.array
    }

    @Test(arguments: [false, true])
    func syncLearningWithOneStreamEqualsFit(normalize: Bool) throws {
        let values = try series(300).map { normalize ? $0 * 7 + 80 : $0 }   // raw-looking units when standardising
        try (["t,value"] + values.enumerated().map { "s\($0.offset),\($0.element)" }).joined(separator: "\n").write(toFile: path("s.csv"), atomically: true, encoding: .utf8)
        #expect(try runRecurd(["init", "--cell", "lstm", "--hidden", "12,8", "--input-size", "1", "--output-size", "1", "--head", "linear", "--seed", "9", "-o", path("m.st")]).status == 0)
        let learning = ["--k1", "4", "--k2", "10", "--optimizer", "adam", "--lr", "0.01", "--clip", "1"]
        let fit = try runRecurd(["fit", "--model", path("m.st"), "--input", path("s.csv"), "--save", path("fit.st"), "--report", path("r.json"), "--quiet"]
                                + learning + (normalize ? ["--normalize"] : []))
        #expect(fit.status == 0, "\(fit.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("r.json")))) as! [String: Any]

        let daemon = try DaemonHarness(arguments: ["--model", path("m.st"), "--sync-learning", "--no-combine", "--state-dir", path("state")] + learning
                                       + (normalize ? [] : ["--no-normalize"]), probeWidth: 1)
        // Steps in messages of 1 to 3: the semantics do not depend on how steps are grouped.
        var t = 0, messages = 0
        while t < values.count {
            let n = min(1 + t % 3, values.count - t)
            try daemon.send(key: "sensor", InputMessage(inputKind: .features, xdim: 1, steps: n, seq: UInt64(t), features: Array(values[t..<(t + n)])))
            t += n
            messages += 1
        }
        let outs = try daemon.receive(count: messages)
        let updates = report["updates"] as! Int
        #expect(outs.last?.message.modelVersion == UInt32(updates))
        let stream = try daemon.control("stream sensor")
        let fitLoss = report["mean_loss"] as! Double
        #expect(abs((stream["mean_loss"] as! Double) / fitLoss - 1) < 1e-5, "daemon \(stream["mean_loss"]!) vs fit \(fitLoss)")
        #expect(stream["targets"] as? Int == values.count - 1)
        #expect(try daemon.control("checkpoint")["ok"] as? Bool == true)
        let fromDaemon = try weights(path("state/model.safetensors")), fromFit = try weights(path("fit.st"))
        #expect(maxAbsDifference(fromDaemon, fromFit) < 1e-5, "max weight difference \(maxAbsDifference(fromDaemon, fromFit))")
        #expect(maxAbsDifference(fromDaemon, try weights(path("m.st"))) > 1e-3, "the weights did not move")
        // The checkpoint carries the optimiser: a daemon restarted from it resumes the count.
        let checkpoint = try ModelFile.decode([UInt8](Data(contentsOf: URL(fileURLWithPath: path("state/model.safetensors")))), file: "cp")
        #expect(checkpoint.metadata["optim.step"] == "\(updates)")
        #expect(checkpoint.extras["optim.exp_avg.head.weight"] != nil)
    }

    @Test func noLearnMessagesAreScoredButNotLearnt() throws {
        #expect(try runRecurd(["init", "--cell", "gru", "--hidden", "8", "--input-size", "1", "--output-size", "1", "--head", "linear", "-o", path("g.st")]).status == 0)
        let daemon = try DaemonHarness(arguments: ["--model", path("g.st"), "--sync-learning", "--no-combine", "--k1", "2", "--k2", "4"], probeWidth: 1)
        let values = try series(40)
        try daemon.send(key: "a", InputMessage(inputKind: .features, flags: [.noLearn], xdim: 1, steps: 40, seq: 0, features: values))
        let out = try daemon.receive(count: 1)[0].message
        #expect(out.modelVersion == 0)
        #expect(out.losses.dropFirst().allSatisfy { $0.isFinite } && out.losses[0].isNaN)
        #expect(try daemon.control("stats")["updates"] as? Int == 0)
        // The same steps without the flag do learn: one update per k1 = 2 targets.
        try daemon.send(key: "b", InputMessage(inputKind: .features, xdim: 1, steps: 40, seq: 0, features: values))
        #expect(try daemon.receive(count: 1)[0].message.modelVersion == 19)
    }

    @Test func explicitTargetsAreResolvedRightAfterTheirStep() throws {
        // A classifier: 3 features → 4 classes; the class is the index of the largest of x0…x2, or 3.
        #expect(try runRecurd(["init", "--cell", "lstm", "--hidden", "16", "--input-size", "3", "--output-size", "4", "--head", "softmax", "-o", path("c.st")]).status == 0)
        let daemon = try DaemonHarness(arguments: ["--model", path("c.st"), "--sync-learning", "--no-combine", "--k1", "4", "--k2", "4", "--lr", "0.05"])
        // Under the default next-step targets a classifier has none of its own: the log says so.
        #expect(daemon.log.contains("learns and scores only from targets that messages carry"), "\(daemon.log)")
        var rng = SeededGenerator(seed: 1)
        var firstLosses: [Float] = [], lastLosses: [Float] = []
        for m in 0..<150 {
            let x = (0..<12).map { _ in Float(rng.nextUnit() * 2 - 1) }
            let labels = (0..<4).map { s -> UInt32 in
                let row = x[(s * 3)..<(s * 3 + 3)]
                return row.max()! < 0 ? 3 : UInt32(row.firstIndex(of: row.max()!)! - s * 3)
            }
            try daemon.send(key: "c", InputMessage(inputKind: .features, targetKind: .classIndex, xdim: 3, ydim: 1, steps: 4, seq: UInt64(m * 4),
                                                    features: x, targetClasses: labels))
            let out = try daemon.receive(count: 1)[0].message
            // Each step's loss is its own prediction against its own label: −log p[label].
            for s in 0..<4 {
                let p = out.values[s * 4 + Int(labels[s])]
                #expect(abs(out.losses[s] - (-log(p))) < 1e-4)
            }
            if m < 10 { firstLosses += out.losses } else if m >= 140 { lastLosses += out.losses }
        }
        let first = firstLosses.reduce(0, +) / Float(firstLosses.count), last = lastLosses.reduce(0, +) / Float(lastLosses.count)
        #expect(last < first * 0.6, "explicit targets were not learnt: \(first) → \(last)")
        #expect(try daemon.control("stats")["updates"] as? Int == 150)
    }

    /// A sequence labelled only at its end (many-to-one) learns through all its steps: the class
    /// is told by the first step's input alone, the label comes four steps later, after steps of
    /// noise; with k1 = k2 = 5 each sequence's fifth step makes one update over all five. (Before
    /// unlabelled steps joined the window, a window was a run of labelled steps, one here, and
    /// never reached k1: nothing was learnt.)
    @Test func aSequenceLabelledAtItsEndLearnsThroughItsSteps() throws {
        #expect(try runRecurd(["init", "--cell", "lstm", "--hidden", "16", "--input-size", "2", "--output-size", "2", "--head", "softmax", "--seed", "3",
                               "-o", path("m2o.st")]).status == 0)
        let daemon = try DaemonHarness(arguments: ["--model", path("m2o.st"), "--sync-learning", "--k1", "5", "--k2", "5", "--lr", "0.02"], probeWidth: 2)
        var rng = SeededGenerator(seed: 2)
        var losses: [Float] = []
        var seq: UInt64 = 0
        for _ in 0..<300 {
            let label: UInt32 = rng.nextUnit() < 0.5 ? 0 : 1
            var x = (0..<10).map { _ in Float(rng.nextUnit() * 2 - 1) }
            x[0] = label == 0 ? -1 : 1
            try daemon.send(key: "q", InputMessage(inputKind: .features, flags: [.reset], xdim: 2, steps: 4, seq: seq, features: Array(x[0..<8])))
            try daemon.send(key: "q", InputMessage(inputKind: .features, targetKind: .classIndex, xdim: 2, ydim: 1, steps: 1, seq: seq + 4,
                                                    features: Array(x[8..<10]), targetClasses: [label]))
            seq += 5
            let outs = try daemon.receive(count: 2)
            #expect(outs[0].message.losses.allSatisfy { $0.isNaN }, "no loss without a target")
            losses.append(outs[1].message.losses[0])
        }
        let first = losses.prefix(50).reduce(0, +) / 50, last = losses.suffix(50).reduce(0, +) / 50
        #expect(last < 0.25 && last < first * 0.5, "the label four steps after its cue was not learnt: \(first) → \(last)")
        // The first sequence's steps came before the stream's first target, when it kept no
        // window yet: its label makes a window of one entry, short of k1. Every later one updates.
        #expect(try daemon.control("stats")["updates"] as? Int == 299)
    }

    @Test func nonFiniteUpdatesAreSkippedAndWeightsStay() throws {
        #expect(try runRecurd(["init", "--cell", "lstm", "--hidden", "8", "--input-size", "2", "--output-size", "2", "--head", "linear", "-o", path("n.st")]).status == 0)
        let daemon = try DaemonHarness(arguments: ["--model", path("n.st"), "--sync-learning", "--no-combine", "--no-normalize", "--targets", "explicit", "--k1", "1", "--k2", "2",
                                                   "--state-dir", path("st")],
                                       probeWidth: 2)
        // A finite target whose squared error overflows float32: the loss is +∞.
        try daemon.send(key: "x", InputMessage(inputKind: .features, targetKind: .values, xdim: 2, ydim: 2, steps: 1, seq: 0,
                                                features: [0.5, -0.5], targetValues: [3e38, -3e38]))
        let out = try daemon.receive(count: 1)[0].message
        #expect(out.losses[0] == .infinity)
        let stats = try daemon.control("stats")
        #expect(stats["skipped_updates"] as? Int == 1 && stats["updates"] as? Int == 0)
        #expect(try daemon.control("checkpoint")["ok"] as? Bool == true)
        #expect(maxAbsDifference(try weights(path("st/model.safetensors")), try weights(path("n.st"))) == 0)
        // Service goes on, and learning resumes with sane targets.
        try daemon.send(key: "x", InputMessage(inputKind: .features, targetKind: .values, xdim: 2, ydim: 2, steps: 1, seq: 1,
                                                features: [0.5, -0.5], targetValues: [1, -1]))
        #expect(try daemon.receive(count: 1)[0].message.losses[0].isFinite)
        #expect(try daemon.control("stats")["updates"] as? Int == 1)
    }

    @Test func backgroundLearningPublishesVersionsAndControlSetsLearning() throws {
        #expect(try runRecurd(["init", "--cell", "gru", "--hidden", "16", "--vocab", "256", "--embed", "8", "--output-size", "256", "--head", "softmax", "-o", path("b.st")]).status == 0)
        let daemon = try DaemonHarness(arguments: ["--model", path("b.st"), "--k1", "8", "--k2", "16", "--lr", "0.01", "--trainer-priority", "normal"], probeText: true)
        let text = Array(String(repeating: "abcdefgh", count: 200).utf8)
        var versions: [UInt32] = []
        for (i, chunk) in stride(from: 0, to: text.count, by: 50).enumerated() {
            let end = min(chunk + 50, text.count)
            try daemon.send(key: "t", InputMessage(inputKind: .text, xdim: 1, steps: end - chunk, seq: UInt64(chunk), tokens: text[chunk..<end].map(UInt32.init)))
            versions.append(try daemon.receive(count: 1)[0].message.modelVersion)
            if i % 4 == 3 { Thread.sleep(forTimeInterval: 0.05) }   // let the trainer catch up
        }
        #expect(zip(versions, versions.dropFirst()).allSatisfy { $0 <= $1 }, "versions went backwards: \(versions)")
        // The trainer runs in idle CPU time: on a busy machine give it a moment.
        var updates = 0
        for _ in 0..<100 where updates == 0 {
            updates = try daemon.control("stats")["updates"] as! Int
            if updates == 0 { Thread.sleep(forTimeInterval: 0.2) }
        }
        #expect(updates > 0, "no update was applied")
        try daemon.send(key: "t", InputMessage(inputKind: .text, xdim: 1, steps: 8, seq: UInt64(text.count), tokens: text[0..<8].map(UInt32.init)))
        let later = try daemon.receive(count: 1)[0].message.modelVersion
        #expect(later > 0 && later >= versions.last!, "no new version was published (\(later))")
        let stream = try daemon.control("stream t")
        #expect(stream["bits_per_byte"] is Double)
        #expect(abs((try daemon.control("set lr=0.002")["lr"] as? Double ?? 0) - 0.002) < 1e-9)
        #expect(try daemon.control("set lr=-1")["ok"] as? Bool == false)
        #expect(try daemon.control("learning off")["ok"] as? Bool == true)
        // Let the trainer finish the windows already handed over: then every due window has been
        // trained, coalesced or dropped. The trainer runs at SCHED_IDLE until it is far behind, so on a busy machine it can
        // stand still for longer than any fixed pause; a skipped update would leave windows
        // unaccounted, hence the deadline.
        var before = -1, settled = false
        let deadline = Date() + 60
        while Date() < deadline {
            let stats = try daemon.control("stats")
            let count = { (name: String) in stats[name] as? Int ?? 0 }
            let now = count("updates")
            settled = count("windows_trained") + count("windows_coalesced") + count("windows_dropped") >= count("windows_due") && now == before
            if settled { break }
            before = now
            Thread.sleep(forTimeInterval: 0.3)
        }
        if !settled { Issue.record("the trainer did not finish the windows handed over within 60 s: \(try daemon.control("stats"))") }
        try daemon.send(key: "t", InputMessage(inputKind: .text, xdim: 1, steps: 200, seq: UInt64(text.count + 8), tokens: text[0..<200].map(UInt32.init)))
        _ = try daemon.receive(count: 1)
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try daemon.control("stats")["updates"] as! Int == before, "learning off still learnt")
        let (_, metrics) = try daemon.http("/metrics")
        #expect(metrics.contains("recurd_model_updates_total \(before)"))
        #expect(metrics.contains("recurd_progressive_loss_total"))
        #expect(metrics.contains("recurd_progressive_targets_total"))
    }
}
