import Foundation
@testable import RecurdDaemon
import RecurdNumerics
import RecurdTestSupport
import Testing

/// Settings are declared once (`ServeSettings`); the config file, the flags, `ctl set` and the
/// documentation all follow that declaration.
@Suite struct SettingsTests {
    func read(_ text: String) throws -> ServeConfiguration {
        var c = ServeConfiguration()
        for (s, v) in try ConfigFile.read(text, file: "recurd.toml") { try s.apply(v, to: &c) }
        return c
    }

    @Test func everyKindOfValue() throws {
        let c = try read("""
            # a comment
            model = "/var/lib/recurd/m.safetensors"
            input = ["tcp://0.0.0.0:5555", 'ipc:///run/recurd/in']   # two binds
            input_connect = "tcp://broker:6000"
            input-socket = "pull"
            subscribe = []
            output-prefix = "pred."
            output-format = "json"
            http = ""
            learn = false
            max-streams = 50_000
            idle-timeout = 2.5
            on-gap = "reset"
            targets = "explicit"
            k1 = 4
            lr = 1e-3
            optimizer = "sgd"
            sync-learning = true
            normalize = false
            new-model-hidden = [32, 16]
            new-model-cell = "gru"
            checkpoint-interval = 5
            """)
        #expect(c.model == "/var/lib/recurd/m.safetensors")
        #expect(c.inputBind == ["tcp://0.0.0.0:5555", "ipc:///run/recurd/in"])
        #expect(c.inputConnect == ["tcp://broker:6000"])
        #expect(c.inputSocket == .pull && c.subscribe.isEmpty && c.outputPrefix == "pred." && c.outputFormat == .json)
        #expect(c.http.isEmpty && !c.learn && c.maxStreams == 50_000 && c.idleTimeout == 2.5)
        #expect(c.onGap == .reset && c.targets == .explicit && c.k1 == 4 && c.learningRate == 0.001 && c.optimizer == .sgd)
        #expect(c.syncLearning && !c.normalize && c.newModelHidden == [32, 16] && c.newModelCell == .gru && c.checkpointInterval == 5)
        // Untouched settings keep their defaults.
        #expect(c.output == ServeConfiguration().output && c.k2 == 32)
    }

    @Test(arguments: [
        ("max-streams = \"many\"", "recurd.toml: max-streams takes an integer, not \"many\""),
        ("output = [\"tcp://a:1\"]", "recurd.toml: output takes a string, not [\"tcp://a:1\"]"),
        ("\n\nbogus = 1", "recurd.toml: unknown setting 'bogus'"),
        ("max-stream = 1", "recurd.toml: unknown setting 'max-stream' (did you mean 'max-streams'?)"),
        ("input-socket = \"router\"", "recurd.toml: input-socket: 'router' is not one of sub, pull"),
        ("[learning]\nk1 = 4", "recurd.toml: [learning]: recurd's config has no sections; write the settings at the top level"),
        ("reset-model = true", "recurd.toml: 'reset-model' is a one-off command-line flag, not a config setting"),
        ("k1 = 1.5", "recurd.toml: k1 takes an integer, not 1.5"),
        // One setting, two spellings: neither silently wins.
        ("max_streams = 5000\nmax-streams = 20000", "recurd.toml: 'max-streams' and 'max_streams' are the same setting, given twice"),
        // The parser would stop at a NUL and take the rest as absent: refused, with where.
        ("lr = 0.3\n\u{0}clip = \"x\"", "recurd.toml:2: a NUL byte at byte offset 9; a config file is text"),
    ])
    func badFilesNameTheKey(_ text: String, _ message: String) {
        #expect(throws: SettingError(message)) { _ = try read(text) }
    }

    @Test func syntaxErrorsNameTheLine() {
        do {
            _ = try read("k1 = 4\nlearn = yes\n")
            Issue.record("accepted a bare word")
        } catch {
            #expect("\(error)".hasPrefix("recurd.toml:2:"), "\(error)")
        }
    }

    @Test func flagsWinOverTheFileAndListsAccumulate() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("r.toml").path
        try "k1 = 4\nlr = 0.01\ninput = [\"tcp://127.0.0.1:1\"]\n".write(toFile: file, atomically: true, encoding: .utf8)
        let source = try SettingsSource.parse(arguments: ["--config", file, "--k1=8", "--no-learn", "--input", "ipc:///a", "--input", "ipc:///b",
                                                          "--new-model-hidden", "32,16", "--sync-learning"])
        let c = try source.resolve()
        #expect(c.k1 == 8 && c.learningRate == 0.01 && !c.learn && c.syncLearning)
        #expect(c.inputBind == ["ipc:///a", "ipc:///b"] && c.newModelHidden == [32, 16])
        #expect(throws: SettingError("unknown option --k3 (did you mean --k1?)")) { _ = try SettingsSource.parse(arguments: ["--k3", "1"]) }
        #expect(throws: SettingError("unknown option --bogus-option")) { _ = try SettingsSource.parse(arguments: ["--bogus-option", "1"]) }
        // A misspelt negation is told the negation, not its opposite.
        #expect(throws: SettingError("unknown option --no-normalise (did you mean --no-normalize?)")) { _ = try SettingsSource.parse(arguments: ["--no-normalise"]) }
        #expect(throws: SettingError("unknown option --no-lern (did you mean --no-learn?)")) { _ = try SettingsSource.parse(arguments: ["--no-lern"]) }
        #expect(throws: SettingError("unknown option --no-anomaly-score (did you mean --no-anomaly-scores?)")) {
            _ = try SettingsSource.parse(arguments: ["--no-anomaly-score"])
        }
        #expect(throws: SettingError("--lr needs a value")) { _ = try SettingsSource.parse(arguments: ["--lr"]) }
        #expect(throws: SettingError("lr: '-' is not a finite number")) { _ = try SettingsSource.parse(arguments: ["--lr", "-"]) }
        // Connecting the input replaces the default bind.
        #expect(try SettingsSource.parse(arguments: ["--input-connect", "tcp://x:1"]).resolve().inputBind.isEmpty)
        // `--input ''` binds nothing (as `input = []` does), with or without a connect.
        let unbound = try SettingsSource.parse(arguments: ["--input", "", "--input-connect", "tcp://x:1"]).resolve()
        #expect(unbound.inputBind.isEmpty && unbound.inputConnect == ["tcp://x:1"])
        #expect(throws: (any Error).self) { _ = try SettingsSource.parse(arguments: ["--input", ""]).resolve() }
        // A config that cannot be read says why, in words.
        #expect(throws: SettingError("config \(dir.path): a directory, not a config file")) {
            _ = try SettingsSource.parse(arguments: ["--config", dir.path]).resolve()
        }
        #expect(throws: SettingError("config \(dir.path)/none.toml: no such file")) {
            _ = try SettingsSource.parse(arguments: ["--config", dir.path + "/none.toml"]).resolve()
        }
        // A value refused after reading names the file when the file set it, not when a flag did.
        let bad = dir.appendingPathComponent("bad.toml").path
        try "lr = 2\n".write(toFile: bad, atomically: true, encoding: .utf8)
        #expect(throws: SettingError("\(bad): lr 2.0 is above 1, which destroys a model's weights; use a value in [0, 1]")) {
            _ = try SettingsSource.parse(arguments: ["--config", bad]).resolve()
        }
        #expect(throws: SettingError("lr 3.0 is above 1, which destroys a model's weights; use a value in [0, 1]")) {
            _ = try SettingsSource.parse(arguments: ["--config", file, "--lr", "3"]).resolve()
        }
        #expect(try SettingsSource.parse(arguments: ["--config", bad, "--lr", "0.1"]).resolve().learningRate == 0.1)
        // A message without the value: the file is named only when the flags alone are fine.
        let negative = dir.appendingPathComponent("negative.toml").path
        try "top-k = -1\n".write(toFile: negative, atomically: true, encoding: .utf8)
        #expect(throws: SettingError("\(negative): top-k must be ≥ 0")) { _ = try SettingsSource.parse(arguments: ["--config", negative]).resolve() }
        #expect(throws: SettingError("top-k must be ≥ 0")) { _ = try SettingsSource.parse(arguments: ["--config", negative, "--top-k", "-2"]).resolve() }
    }

    @Test func valuesThatDestroyAModelAreRefused() throws {
        #expect(throws: SettingError("lr 1e+30 is above 1, which destroys a model's weights; use a value in [0, 1]")) {
            _ = try SettingsSource.parse(arguments: ["--lr", "1e30"]).resolve()
        }
        #expect(throws: (any Error).self) { _ = try SettingsSource.parse(arguments: ["--lr", "-1"]).resolve() }
        #expect(throws: (any Error).self) { _ = try SettingsSource.parse(arguments: ["--max-streams", "0"]).resolve() }
    }

    /// Values that passed the checks and failed later, once a stream arrived or memory was
    /// allocated: refused at start, saying the range.
    @Test func valuesThatWouldFailLaterAreRefused() throws {
        for (flags, says) in [(["--new-model-embedding", "-1"], "new-model-embedding must be in 1…65536"),
                              (["--new-model-hidden", "70000"], "new-model-hidden must be sizes in 1…65536"),
                              (["--max-streams", "20000000"], "max-streams must be at most 10000000"),
                              (["--max-batch", "100000", "--max-streams", "200000"], "max-batch must be at most 65536"),
                              (["--http", ":9464"], "http: ':9464' is not HOST:PORT")] {
            do {
                _ = try SettingsSource.parse(arguments: flags).resolve()
                Issue.record("accepted \(flags)")
            } catch {
                #expect("\(error)".contains(says), "\(flags): \(error)")
            }
        }
        // A max-streams below the default max-batch takes the batch down with it; both given and
        // clashing, it is refused.
        #expect(try SettingsSource.parse(arguments: ["--max-streams", "1000"]).resolve().maxBatch == 999)
        #expect(try SettingsSource.parse(arguments: ["--max-streams", "100000"]).resolve().maxBatch == 2048)
        #expect(throws: SettingError("max-streams (1000) must exceed max-batch (1000)")) {
            _ = try SettingsSource.parse(arguments: ["--max-streams", "1000", "--max-batch", "1000"]).resolve()
        }
        #expect(try Daemon.hostPort("[::1]:9464") == ("::1", 9464))
        #expect(try Daemon.hostPort("127.0.0.1:0") == ("127.0.0.1", 0))
    }

    /// How many streams stay in memory: max-streams, unless text streams' context models at full
    /// size would not fit the text budget (text-context-memory, or half the process's limit).
    @Test func textContextModelsBoundTheStreamsInMemory() throws {
        var c = ServeConfiguration()
        let mib = 1 << 20, mibU: UInt64 = 1 << 20
        #expect(c.residentStreams(textBytes: 0, memoryLimit: 1 << 30) == 10_000, "no text model: max-streams")
        #expect(c.residentStreams(textBytes: 4 * mib, memoryLimit: 4 << 30) == 512, "4 GiB limit: 2 GiB of 4 MiB models")
        #expect(c.residentStreams(textBytes: 4 * mib, memoryLimit: 1 << 50) == 10_000, "a large machine: max-streams")
        #expect(c.residentStreams(textBytes: 4 * mib, memoryLimit: mibU) == 1, "never below one")
        c.textContextMemory = 64 * mib
        #expect(c.residentStreams(textBytes: 4 * mib, memoryLimit: 1 << 50) == 16, "the setting, not the machine")
        c.maxStreams = 10
        #expect(c.residentStreams(textBytes: 4 * mib, memoryLimit: 1 << 50) == 10)
        c.textContextMemory = -1
        #expect(c.problem()?.contains("text-context-memory") == true)
    }

    /// The example config and the README's table list exactly the declared settings.
    @Test func documentationListsExactlyTheDeclaredSettings() throws {
        let declared = Set(ServeSettings.all.map(\.key))
        let configKeys = Set(ServeSettings.all.filter { !$0.flagOnly }.map(\.key))
        let example = try String(contentsOf: repositoryRoot.appendingPathComponent("Deploy/recurd.toml"), encoding: .utf8)
        var inExample: Set<String> = []
        for line in example.split(separator: "\n") {
            let l = line.trimmingCharacters(in: .whitespaces)
            let body = l.hasPrefix("# ") ? String(l.dropFirst(2)) : l
            guard let eq = body.firstIndex(of: "="), !body.hasPrefix("#") else { continue }
            let key = body[..<eq].trimmingCharacters(in: .whitespaces)
            if key.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "-" }) { inExample.insert(key) }
        }
        #expect(inExample == configKeys, "Deploy/recurd.toml: missing \(configKeys.subtracting(inExample).sorted()), extra \(inExample.subtracting(configKeys).sorted())")
        // The example parses, and gives the defaults.
        var c = ServeConfiguration()
        for (s, v) in try ConfigFile.read(example, file: "recurd.toml") { try s.apply(v, to: &c) }
        #expect(c == ServeConfiguration())

        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        guard let start = readme.range(of: "<!-- settings -->"), let end = readme.range(of: "<!-- /settings -->") else {
            Issue.record("README.md has no <!-- settings --> table")
            return
        }
        var inReadme: Set<String> = []
        for line in readme[start.upperBound..<end.lowerBound].split(separator: "\n") where line.hasPrefix("| `") {
            let cell = line.dropFirst(3).prefix { $0 != "`" }
            inReadme.insert(String(cell.split(separator: " ").first ?? "").replacingOccurrences(of: "--", with: "").replacingOccurrences(of: "[no-]", with: ""))
        }
        #expect(inReadme == declared, "README: missing \(declared.subtracting(inReadme).sorted()), extra \(inReadme.subtracting(declared).sorted())")
    }
}
