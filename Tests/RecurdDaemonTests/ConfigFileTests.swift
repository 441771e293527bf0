@testable import RecurdDaemon
import RecurdNumerics
import Testing

@Suite struct ConfigFileTests {
    func apply(_ text: String) throws(ConfigFile.Problem) -> ServeConfiguration {
        try ConfigFile.apply(text, file: "recurd.toml", to: ServeConfiguration())
    }

    @Test func everyKindOfValue() throws {
        let c = try apply("""
            # a comment
            [serve]                       # section headers only group keys
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
            """)
        #expect(c.model == "/var/lib/recurd/m.safetensors")
        #expect(c.inputBind == ["tcp://0.0.0.0:5555", "ipc:///run/recurd/in"])
        #expect(c.inputConnect == ["tcp://broker:6000"])
        #expect(c.inputSocket == .pull && c.subscribe.isEmpty && c.outputPrefix == "pred." && c.outputFormat == .json)
        #expect(c.http.isEmpty && !c.learn && c.maxStreams == 50_000 && c.idleTimeout == 2.5)
        #expect(c.onGap == .reset && c.targets == .explicit && c.k1 == 4 && c.learningRate == 0.001 && c.optimizer == .sgd)
        #expect(c.syncLearning && !c.normalize && c.newModelHidden == [32, 16] && c.newModelCell == .gru)
        // Untouched settings keep their defaults.
        #expect(c.output == ServeConfiguration().output && c.k2 == 32)
    }

    @Test(arguments: [
        ("max-streams = \"many\"", "recurd.toml:1: max-streams takes a number"),
        ("\n\nbogus = 1", "recurd.toml:3: unknown setting 'bogus'"),
        ("input-socket = \"router\"", "recurd.toml:1: input-socket: 'router' is not one of sub, pull"),
        ("learn = yes", "recurd.toml:1: learn: cannot read value 'yes' (strings need quotes)"),
        ("k1", "recurd.toml:1: expected key = value"),
        ("input = [\"a\"", "recurd.toml:1: input: unterminated array"),
        ("max-batch = 1.5", "recurd.toml:1: max-batch takes an integer"),
    ])
    func problemsNameTheLine(_ text: String, _ message: String) {
        do {
            _ = try apply(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description == message)
        }
    }

    @Test func validation() {
        var c = ServeConfiguration()
        c.maxStreams = 100
        c.maxBatch = 100
        #expect(c.problem()?.contains("must exceed max-batch") == true)
        c = ServeConfiguration()
        c.k1 = 0
        #expect(c.problem()?.contains("k1") == true)
        c = ServeConfiguration()
        c.inputBind = []
        #expect(c.problem()?.contains("no input endpoint") == true)
        #expect(ServeConfiguration().problem() == nil)
    }

    @Test func controlCommands() {
        #expect(ControlCommand.parse("stats") == .stats)
        #expect(ControlCommand.parse("  stream  sensor 1 ") == .stream("sensor 1"))
        #expect(ControlCommand.parse("set lr = 0.01") == .set("lr", "0.01"))
        #expect(ControlCommand.parse("learning maybe") == nil)
        #expect(ControlCommand.parse(#"{"command": "drop", "key": "k"}"#) == .drop("k"))
        #expect(ControlCommand.parse(#"{"command": "learning", "on": false}"#) == .learning(false))
        #expect(ControlCommand.parse(#"{"command": "reset"}"#) == nil)
        #expect(ControlCommand.parse("stream") == nil)
    }
}
