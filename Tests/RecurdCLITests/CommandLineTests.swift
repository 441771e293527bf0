import Foundation
import RecurdTestSupport
import Testing

/// The real `recurd` binary, started as a process.
@Suite struct CommandLineTests {
    /// This test's own directory, removed after it (Swift Testing makes a suite instance per test).
    let scratch = ScratchDirectory()
    var dir: URL { scratch.url }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func write(_ name: String, _ text: String) -> String {
        try! text.write(toFile: path(name), atomically: true, encoding: .utf8)
        return path(name)
    }

    @Test func initThenRunFeatures() throws {
        let r = try runRecurd(["init", "--cell", "gru", "--hidden", "8,4", "--input-size", "2", "--output-size", "2", "--head", "linear", "--seed", "5", "-o", path("m.safetensors")])
        #expect(r.status == 0, "\(r.stderr)")
        let csv = write("s.csv", "time,a,b\nt0,1,2\nt1,3,4\nt2,5,6\n")
        let run = try runRecurd(["run", "--model", path("m.safetensors"), "--input", csv])
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.allSatisfy { $0.split(separator: ",").count == 2 && $0.split(separator: ",").allSatisfy { Float($0) != nil } })
        // --output writes the same lines to a file.
        let toFile = try runRecurd(["run", "--model", path("m.safetensors"), "--input", csv, "--output", path("out.csv")])
        #expect(toFile.status == 0 && toFile.stdout.isEmpty)
        #expect(try String(contentsOfFile: path("out.csv"), encoding: .utf8) == run.stdout)
    }

    /// `bench train` runs real updates: the loss it reports is finite and the trained windows
    /// are the ones asked for; a model whose outputs cannot predict its inputs is refused.
    @Test func benchTrainReportsItsWindows() throws {
        let r = try runRecurd(["bench", "train", "--windows", "3", "--updates", "2", "--warmup", "1", "--hidden", "8"])
        #expect(r.status == 0, "\(r.stderr)")
        let line = try #require(r.stdout.split(separator: "\n").last)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(json["windows"] as? Int == 3)
        #expect(json["loss_finite"] as? Bool == true)
        #expect((json["windows_per_second"] as? Double ?? 0) > 0)
        _ = try runRecurd(["init", "--cell", "lstm", "--hidden", "4", "--input-size", "2", "--output-size", "3", "--head", "linear", "-o", path("m3")])
        let refused = try runRecurd(["bench", "train", "--model", path("m3"), "--updates", "1"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("predicts its next input"))
    }

    @Test func initIsReproducible() throws {
        for name in ["a", "b"] {
            _ = try runRecurd(["init", "--cell", "lstm", "--hidden", "16", "--vocab", "256", "--embed", "4", "--output-size", "256", "--head", "softmax", "--seed", "3", "-o", path(name)])
        }
        #expect(FileManager.default.contentsEqual(atPath: path("a"), andPath: path("b")))
    }

    @Test func fitOnTextWritesReportAndModel() throws {
        _ = try runRecurd(["init", "--cell", "lstm", "--hidden", "16", "--vocab", "256", "--embed", "4", "--output-size", "256", "--head", "softmax", "-o", path("m")])
        let text = write("t.txt", String(repeating: "the cat sat on the mat. ", count: 100))
        let r = try runRecurd(["fit", "--model", path("m"), "--input", text, "--k1", "8", "--k2", "16", "--optimizer", "adam", "--lr", "0.05", "--clip", "1",
                               "--save", path("m2"), "--report", path("r.json")])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("r.json")))) as! [String: Any]
        #expect(report["steps"] as? Int == 2400)
        #expect(report["targets"] as? Int == 2399)
        #expect(report["updates"] as? Int == 2399 / 8)
        let mean = report["mean_loss"] as! Double, bits = report["bits_per_byte"] as! Double
        #expect(abs(bits - mean / log(2)) < 1e-9)
        let curve = report["curve"] as! [[String: Any]]
        #expect(curve.count == 3)
        // A repetitive text is learnt: the second block's loss is well below the first's.
        #expect((curve[1]["block_loss"] as! Double) < (curve[0]["block_loss"] as! Double) * 0.5)
        #expect(report["steps_per_second"] as! Double > 0)
        // The saved model runs.
        #expect(try runRecurd(["run", "--model", path("m2"), "--input", text]).status == 0)
    }

    @Test func errorsAreOneClearLine() throws {
        _ = try runRecurd(["init", "--cell", "lstm", "--hidden", "4", "--input-size", "5", "--output-size", "5", "--head", "linear", "-o", path("m5")])
        let csv3 = write("three.csv", "a,b,c\n1,2,3\n4,5,6\n")
        let cases: [([String], String)] = [
            (["run", "--model", path("missing"), "--input", csv3], "no such model file"),
            (["run", "--model", path("m5"), "--input", path("nope.csv")], "no such input file"),
            (["run", "--model", path("m5"), "--input", csv3], "3 feature columns (a, b, c) but the model takes 5 inputs"),
            (["run", "--model", csv3, "--input", csv3], "three.csv"),
            (["init", "--cell", "lstm", "--hidden", "4", "--input-size", "3", "--vocab", "9", "--embed", "2", "--output-size", "1", "--head", "linear", "-o", path("x")], "not both"),
            (["init", "--cell", "lstm", "--hidden", "4,0", "--input-size", "3", "--output-size", "1", "--head", "linear", "-o", path("x")], "--hidden"),
            // A malformed value is answered with the subcommand's usage, not the tool's.
            (["init", "--cell", "lstm", "--hidden", "16,abc", "--input-size", "3", "--output-size", "1", "--head", "linear", "-o", path("x")], "Usage: recurd init"),
            (["run", "--model", path("m5"), "--input", csv3, "--columns", "x"], "Usage: recurd run"),
            (["run", "--model", path("m5"), "--input", csv3, "--columns", "-1,1"], "0-based column numbers"),
            (["fit", "--model", path("m5"), "--input", csv3, "--k1", "2", "--k2", "4", "--optimizer", "sgd", "--lr", "0.1", "--clip", "0",
              "--text-context-bytes", "8"], "--text-context-bytes scores text models"),
            (["fit", "--model", path("m5"), "--input", csv3, "--k1", "0", "--k2", "4", "--optimizer", "sgd", "--lr", "0.1", "--clip", "0"], "k1"),
            (["fit", "--model", path("m5"), "--input", csv3, "--k1", "2", "--k2", "4", "--optimizer", "rmsprop", "--lr", "0.1", "--clip", "0"], "rmsprop"),
            (["run", "--model", path("m5"), "--input", csv3, "--format", "text"], "text"),
            // A negative number is the option's value, refused for what it is (not "Missing value").
            (["fit", "--model", path("m5"), "--input", csv3, "--k1", "2", "--k2", "4", "--optimizer", "sgd", "--lr", "-1", "--clip", "0"], "learning rate"),
            (["serve", "--lr", "-1"], "learning rate"),
            // A model too large for the machine: refused with what it needs, not a failed allocation's trap.
            (["init", "--cell", "lstm", "--hidden", "65536,65536", "--input-size", "3", "--output-size", "1", "--head", "linear", "-o", path("x")],
             "needs about"),
            // Outputs are checked before the fit, not after it.
            (["fit", "--model", path("m5"), "--input", csv3, "--k1", "2", "--k2", "4", "--optimizer", "sgd", "--lr", "0.1", "--clip", "0",
              "--save", path("same"), "--report", path("same")], "name the same file"),
            (["fit", "--model", path("m5"), "--input", csv3, "--k1", "2", "--k2", "4", "--optimizer", "sgd", "--lr", "0.1", "--clip", "0",
              "--report", path("no/such/r.json")], "does not exist"),
        ]
        for (args, needle) in cases {
            let r = try runRecurd(args)
            #expect(r.status != 0, "\(args) should fail")
            #expect(r.stderr.contains(needle), "\(args): stderr was \(r.stderr)")
            #expect(!r.stderr.contains("Fatal error"), "\(args) crashed")
        }
        for (args, _) in cases { #expect(!(try runRecurd(args)).stderr.contains("Missing value"), "\(args)") }
        // A bad-data error is exactly one line.
        let r = try runRecurd(["run", "--model", path("m5"), "--input", csv3])
        #expect(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1)
    }

    /// A fit whose loss overflows still writes its report ("inf"/"nan" as strings, which JSON
    /// cannot hold as numbers), and k1 > k2 is run but warned about.
    @Test func fitReportsAnOverflowingLossAndWarnsOfK1AboveK2() throws {
        _ = try runRecurd(["init", "--cell", "lstm", "--hidden", "4", "--input-size", "2", "--output-size", "2", "--head", "linear", "-o", path("m2")])
        let csv = write("wild.csv", (0..<300).map { "\(Double($0 % 7) * 1e3),\(Double($0 % 5) * -1e3)\n" }.joined())
        let r = try runRecurd(["fit", "--model", path("m2"), "--input", csv, "--k1", "5", "--k2", "2", "--optimizer", "sgd", "--lr", "1e30",
                               "--clip", "0", "--report", path("wild.json"), "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("warning: k1 5 > k2 2") && r.stderr.contains("3 of every 5 targets are never learnt from"), "\(r.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("wild.json")))) as? [String: Any])
        let mean = report["mean_loss"]
        #expect(mean is String && ["inf", "nan"].contains(mean as? String), "\(String(describing: mean))")
    }

    /// A token model whose vocabulary is not the 256 bytes of text reads token ids (commas,
    /// spaces or lines between them) by default; run and fit agree, and an id outside the
    /// vocabulary is named by line and place.
    @Test func tokenIDsForAVocabularyOtherThanBytes() throws {
        let model = path("v40")
        #expect(try runRecurd(["init", "--cell", "gru", "--hidden", "8", "--vocab", "40", "--embed", "4", "--output-size", "40", "--head", "softmax",
                               "-o", model]).status == 0)
        let ids = (0..<60).map { ($0 * 7) % 40 }
        let file = write("ids.txt", ids[0..<30].map(String.init).joined(separator: " ") + "\n" + ids[30...].map(String.init).joined(separator: ",") + "\n")
        let run = try runRecurd(["run", "--model", model, "--input", file])
        #expect(run.status == 0, "\(run.stderr)")
        let rows = run.stdout.split(separator: "\n")
        #expect(rows.count == 60 && rows[0].split(separator: ",").count == 40, "\(rows.count)")
        #expect(try runRecurd(["run", "--model", model, "--input", file, "--format", "tokens"]).stdout == run.stdout)
        let fit = try runRecurd(["fit", "--model", model, "--input", file, "--k1", "4", "--k2", "8", "--optimizer", "adam", "--lr", "0.01",
                                 "--clip", "1", "--quiet"])
        #expect(fit.status == 0 && fit.stdout.contains("steps 60  targets 59"), "\(fit.stdout) \(fit.stderr)")
        let outside = try runRecurd(["run", "--model", model, "--input", write("bad.txt", "1 2\n3 40 5\n")])
        #expect(outside.status != 0 && outside.stderr.contains("line 2, token 2: 40 is outside the model's vocabulary of 40"), "\(outside.stderr)")
        // A byte-order mark is skipped, as in CSV.
        #expect(try runRecurd(["run", "--model", model, "--input", write("bom.txt", "\u{FEFF}1 2 3\n")]).stdout.split(separator: "\n").count == 3)
        let word = try runRecurd(["run", "--model", model, "--input", write("word.txt", "1 two\n")])
        #expect(word.status != 0 && word.stderr.contains("line 1, token 2: 'two' is not a token id"), "\(word.stderr)")
    }

    @Test func versionAndSubcommandHelp() throws {
        let v = try runRecurd(["--version"])
        #expect(v.status == 0 && v.stdout.hasPrefix("recurd ") && v.stdout.contains("wire protocol v1"), "\(v.stdout)\(v.stderr)")
        // `ctl --help` is help, not a command sent to a daemon.
        let h = try runRecurd(["ctl", "--help"])
        #expect(h.status == 0 && h.stdout.contains("USAGE: recurd ctl"), "\(h.stdout)\(h.stderr)")
    }
}
