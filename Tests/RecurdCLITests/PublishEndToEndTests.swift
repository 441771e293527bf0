import Foundation
import RecurdTestSupport
import Testing

/// `recurd publish` as a newcomer uses it: against a real daemon it continues a stream's
/// numbering, says what the daemon took, and with nobody listening it fails instead of
/// reporting success.
@Suite(.serialized) struct PublishEndToEndTests {
    /// This test's own directory, removed after it (Swift Testing makes a suite instance per test).
    let scratch = ScratchDirectory()
    var dir: URL { scratch.url }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func setUp() throws -> (DaemonHarness, String) {
        let model = path("m.safetensors")
        let r = try runRecurd(["init", "--cell", "gru", "--hidden", "8", "--input-size", "2", "--output-size", "2", "--head", "linear", "-o", model])
        #expect(r.status == 0, "\(r.stderr)")
        let csv = "a,b\n" + (0..<20).map { "\(Double($0) * 0.5),\(sin(Double($0)))" }.joined(separator: "\n") + "\n"
        try csv.write(toFile: path("s.csv"), atomically: true, encoding: .utf8)
        return (try DaemonHarness(arguments: ["--model", model], inputSocket: "sub", probeWidth: 2), path("s.csv"))
    }

    func publish(_ d: DaemonHarness, _ file: String, _ extra: [String] = []) throws -> CommandResult {
        try runRecurd(["publish", "--connect", d.inputEndpoint, "--control", d.controlEndpoint, "--stream", "s", "--quiet"] + extra + [file])
    }

    @Test func aSecondRunContinuesTheStreamAndResetStartsItAfresh() throws {
        let (d, csv) = try setUp()
        let first = try publish(d, csv)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("(seq 0…19)"), "\(first.stdout)")
        #expect(first.stdout.contains("20 steps taken, 0 duplicates, 0 rejected"), "\(first.stdout)")
        #expect(first.stdout.contains("stream 's': next seq 20"), "\(first.stdout)")

        // The same file again continues the stream: nothing is dropped as a duplicate.
        let second = try publish(d, csv)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.contains("(seq 20…39)"), "\(second.stdout)")
        #expect(second.stderr.contains("continuing from there"), "\(second.stderr)")
        #expect(try d.control("stream s")["next_seq"] as? Int == 40)
        #expect(try d.control("stats")["duplicates"] as? Int == 0)

        // An explicit old seq is dropped whole, and publish says so.
        let stale = try publish(d, csv, ["--seq", "0"])
        #expect(stale.stdout.contains("20 duplicates"), "\(stale.stdout)")
        #expect(stale.stderr.contains("dropped as duplicates") && stale.stderr.contains("Leave out --seq"), "\(stale.stderr)")

        // Without control to ask (a producer's key that is not an operator's), the steps go
        // without seq and continue the stream rather than being dropped as duplicates.
        let blind = try runRecurd(["publish", "--connect", d.inputEndpoint, "--control", "", "--stream", "s", "--quiet", csv])
        #expect(blind.status == 0 && blind.stdout.contains("without seq") && blind.stderr.contains("sending without seq"), "\(blind.stdout) \(blind.stderr)")
        var next = 0
        for _ in 0..<50 where next != 40 + 20 {
            Thread.sleep(forTimeInterval: 0.1)
            next = try d.control("stream s")["next_seq"] as? Int ?? 0
        }
        let duplicates = try d.control("stats")["duplicates"] as? Int
        #expect(next == 60 && duplicates == 20)

        // --reset starts it afresh from 0.
        let fresh = try publish(d, csv, ["--reset"])
        #expect(fresh.status == 0, "\(fresh.stderr)")
        #expect(fresh.stdout.contains("(seq 0…19)") && fresh.stdout.contains("next seq 20"), "\(fresh.stdout)")
        // PUSH to the SUB input fails its handshake: the hint still names the socket.
        let mismatch = try publish(d, csv, ["--socket", "push", "--wait", "1"])
        #expect(mismatch.status != 0 && mismatch.stderr.contains("needs --socket pub"), "\(mismatch.stderr)")
        #expect(d.terminate() == 0)
    }

    /// A file the daemon's model cannot take is refused before anything is sent, saying why, as
    /// `recurd run` does, instead of every step being rejected behind an exit status of 0.
    @Test func aFileTheModelCannotTakeIsRefusedUpFront() throws {
        let (d, _) = try setUp()
        try "a,b,c\n1,2,3\n4,5,6\n".write(toFile: path("wide.csv"), atomically: true, encoding: .utf8)
        let wide = try publish(d, path("wide.csv"))
        #expect(wide.status != 0 && wide.stderr.contains("3 feature columns (a, b, c) but the model takes 2 inputs")
                && wide.stderr.contains("nothing was sent"), "\(wide.stderr)")
        try "hello".write(toFile: path("t.txt"), atomically: true, encoding: .utf8)
        let text = try publish(d, path("t.txt"))
        #expect(text.status != 0 && text.stderr.contains("the model takes feature vectors but the input is text"), "\(text.stderr)")
        let stats = try d.control("stats")
        let stream = try d.control("stream s")
        #expect(stats["rejected_total"] as? Int == 0 && stream["ok"] as? Bool == false, "\(stats)")
        #expect(d.terminate() == 0)
    }

    /// Against a token model of 1,000 ids, a file that is not CSV is read as token ids (not its
    /// bytes as text), and an id outside the vocabulary is named by line and place before
    /// anything is sent.
    @Test func tokenIDsGoToAModelOfAnotherVocabulary() throws {
        let model = path("v1000.safetensors")
        #expect(try runRecurd(["init", "--cell", "gru", "--hidden", "8", "--vocab", "1000", "--embed", "4", "--output-size", "1000",
                               "--head", "softmax", "-o", model]).status == 0)
        let d = try DaemonHarness(arguments: ["--model", model, "--no-learn"], inputSocket: "sub", probeText: true)
        try "1, 2, 3\n999 4\n".write(toFile: path("ids.txt"), atomically: true, encoding: .utf8)
        let sent = try publish(d, path("ids.txt"))
        #expect(sent.status == 0 && sent.stdout.contains("published 5 steps") && sent.stdout.contains("bits/token"), "\(sent.stdout) \(sent.stderr)")
        #expect(try d.control("stream s")["next_seq"] as? Int == 5)
        try "1 2\n1200 4\n".write(toFile: path("big.txt"), atomically: true, encoding: .utf8)
        let big = try publish(d, path("big.txt"))
        #expect(big.status != 0 && big.stderr.contains("line 2, token 1: 1200 is outside the model's vocabulary of 1000")
                && big.stderr.contains("nothing was sent"), "\(big.stderr)")
        #expect(try d.control("stream s")["next_seq"] as? Int == 5)
        #expect(d.terminate() == 0)
    }

    /// Some of a run's messages refused (here too large) while the last one is taken: the
    /// stream still ends at the right seq, but the run did not deliver, and says so.
    @Test func aRunWithRejectedMessagesFails() throws {
        let model = path("m.safetensors")
        #expect(try runRecurd(["init", "--cell", "gru", "--hidden", "8", "--input-size", "2", "--output-size", "2", "--head", "linear", "-o", model]).status == 0)
        let d = try DaemonHarness(arguments: ["--model", model, "--max-message-bytes", "100"], inputSocket: "sub", probeWidth: 2)
        let csv = "a,b\n" + (0..<20).map { "\($0),\($0 * 2)" }.joined(separator: "\n") + "\n"
        try csv.write(toFile: path("s.csv"), atomically: true, encoding: .utf8)
        let r = try publish(d, path("s.csv"), ["--steps-per-message", "16"])
        #expect(r.status != 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("1 rejected") && r.stdout.contains("(too_large 1;"), "\(r.stdout)")
        #expect(r.stderr.contains("took 4 of 20 steps of 's'"), "\(r.stderr)")
        #expect(d.terminate() == 0)
    }

    @Test func nobodyListeningIsAnError() throws {
        let csv = path("lonely.csv")
        try "a\n1\n2\n".write(toFile: csv, atomically: true, encoding: .utf8)
        for socket in ["pub", "push"] {
            let r = try runRecurd(["publish", "--connect", "ipc://\(path("nobody"))", "--control", "ipc://\(path("nobody-ctl"))", "--stream", "s",
                                   "--socket", socket, "--wait", "0.5", csv])
            #expect(r.status != 0, "\(socket): \(r.stdout)")
            #expect(!r.stdout.contains("published"), "\(socket): \(r.stdout)")
            #expect(r.stderr.contains("is `recurd serve` running"), "\(socket): \(r.stderr)")
        }
    }
}
