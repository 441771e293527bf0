import Foundation
import RecurdTestSupport
import RecurdWire
import Testing
import ZeroMQ

/// CURVE on every endpoint (DESIGN §6 "Security roles"), the real binary over real sockets, with
/// certificates made by `recurd keygen`.
@Suite(.serialized) struct SecurityEndToEndTests {
    /// This test's own directory, removed after it (Swift Testing makes a suite instance per test).
    let scratch = ScratchDirectory()
    var dir: URL { scratch.url }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    struct Key {
        let publicKey: [UInt8], secretKey: [UInt8]
    }

    /// `recurd keygen NAME --dir keys`, then the public file copied into each role folder.
    func keygen(_ name: String, roles: [String]) throws -> Key {
        let r = try runRecurd(["keygen", name, "--dir", path("keys")])
        #expect(r.status == 0, "\(r.stderr)")
        let secretFile = path("keys/\(name).key_secret")
        let attributes = try FileManager.default.attributesOfItem(atPath: secretFile)
        #expect((attributes[.posixPermissions] as? Int) == 0o600, "the secret certificate must be 0600")
        for role in roles {
            try FileManager.default.createDirectory(atPath: path("clients/\(role)"), withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: path("keys/\(name).key"), toPath: path("clients/\(role)/\(name).key"))
        }
        return try Self.load(secretFile)
    }

    static func load(_ file: String) throws -> Key {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        func value(_ name: String) -> [UInt8]? {
            guard let line = text.split(separator: "\n").first(where: { $0.contains(name) }),
                  let open = line.firstIndex(of: "\""), let close = line.lastIndex(of: "\"") else { return nil }
            return ZMQCurve.decode(String(line[line.index(after: open)..<close]))
        }
        return Key(publicKey: value("public-key")!, secretKey: value("secret-key") ?? [])
    }

    struct Setup {
        let daemon: DaemonHarness
        let server: Key
        let keys: [String: Key]
    }

    /// A daemon with CURVE on. "harness" is in every role (the harness's own sockets use it);
    /// "producer" may only produce, "trainer" produces and trains, "consumer", "operator" their
    /// roles; "stranger" is in none.
    func start(_ extra: [String] = [], trainers: Bool = false, model: String? = nil) throws -> Setup {
        for role in ["producers", "consumers", "operators"] + (trainers ? ["trainers"] : []) {
            try FileManager.default.createDirectory(atPath: path("clients/\(role)"), withIntermediateDirectories: true)
        }
        let server = try keygen("server", roles: [])
        var keys: [String: Key] = [:]
        keys["harness"] = try keygen("harness", roles: ["producers", "consumers", "operators"] + (trainers ? ["trainers"] : []))
        keys["producer"] = try keygen("producer", roles: ["producers"])
        keys["trainer"] = try keygen("trainer", roles: ["producers"] + (trainers ? ["trainers"] : []))
        keys["consumer"] = try keygen("consumer", roles: ["consumers"])
        keys["operator"] = try keygen("operator", roles: ["operators"])
        keys["stranger"] = try keygen("stranger", roles: [])
        let modelFile = try model ?? featureModel()
        let h = keys["harness"]!
        let daemon = try DaemonHarness(arguments: ["--model", modelFile, "--curve-server-cert", path("keys/server.key_secret"),
                                                   "--curve-clients", path("clients")] + extra,
                                       curve: .init(publicKey: h.publicKey, secretKey: h.secretKey, serverKey: server.publicKey))
        return Setup(daemon: daemon, server: server, keys: keys)
    }

    func featureModel() throws -> String {
        let r = try runRecurd(["init", "--cell", "lstm", "--hidden", "8", "--input-size", "3", "--output-size", "3", "--head", "linear", "-o", path("m.st")])
        #expect(r.status == 0)
        return path("m.st")
    }

    /// A client socket with `key` (nil: plaintext).
    func socket(_ s: Setup, _ type: ZMQSocketType, _ key: String?, endpoint: String) throws -> ZMQSocket {
        let socket = try ZMQSocket(context: s.daemon.context, type: type)
        try socket.setLinger(milliseconds: 0)
        if let key, let k = s.keys[key] { try socket.setCurveClient(serverKey: s.server.publicKey, publicKey: k.publicKey, secretKey: k.secretKey) }
        try socket.connect(endpoint)
        return socket
    }

    func step(_ seq: Int) -> [UInt8] {
        InputEncoder.encode(InputMessage(inputKind: .features, xdim: 3, steps: 1, seq: UInt64(seq), features: [Float(seq), 1, -1]))
    }

    func denied(_ s: Setup, _ endpoint: String) throws -> Int {
        ((try s.daemon.control("stats")["auth_denied"] as? [String: Any])?[endpoint] as? Int) ?? -1
    }

    /// keygen refuses to replace a pair without --force, and with it replaces a symlink where the
    /// secret goes instead of writing through it.
    @Test func keygenReplacesOnlyWithForceAndNeverFollowsALink() throws {
        _ = try keygen("k", roles: [])
        let first = try Self.load(path("keys/k.key_secret"))
        let again = try runRecurd(["keygen", "k", "--dir", path("keys")])
        #expect(again.status != 0 && again.stderr.contains("exists; pass --force"), "\(again.stderr)")
        try FileManager.default.removeItem(atPath: path("keys/k.key_secret"))
        try FileManager.default.createSymbolicLink(atPath: path("keys/k.key_secret"), withDestinationPath: path("elsewhere"))
        let forced = try runRecurd(["keygen", "k", "--dir", path("keys"), "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path("elsewhere")), "the secret was written through the link")
        let attributes = try FileManager.default.attributesOfItem(atPath: path("keys/k.key_secret"))
        #expect(attributes[.type] as? FileAttributeType == .typeRegular && (attributes[.posixPermissions] as? Int) == 0o600)
        #expect(try Self.load(path("keys/k.key_secret")).secretKey != first.secretKey)
        #expect(try FileManager.default.contentsOfDirectory(atPath: path("keys")).sorted() == ["k.key", "k.key_secret"])
    }

    @Test func allowedProducerAndConsumerAreServedExactly() throws {
        let s = try start(["--no-learn", "--no-normalize", "--no-combine"])
        let rows: [[Float]] = (0..<20).map { t in [Float(t) * 0.1, sin(Float(t)), 1] }
        let csv = rows.map { $0.map { "\($0)" }.joined(separator: ",") }.joined(separator: "\n") + "\n"
        try csv.write(toFile: path("rows.csv"), atomically: true, encoding: .utf8)
        let expected = try runRecurd(["run", "--model", path("m.st"), "--input", path("rows.csv")]).stdout.split(separator: "\n")
            .map { $0.split(separator: ",").map { Float($0)! } }
        // A producer-only key sends; the consumer-only key receives.
        let consumer = try socket(s, .sub, "consumer", endpoint: s.daemon.outputEndpoint)
        try consumer.subscribe(Array("a".utf8))
        try consumer.setReceiveTimeout(milliseconds: 10_000)
        let producer = try socket(s, .push, "producer", endpoint: s.daemon.inputEndpoint)
        // The subscription needs a moment to arrive: the first steps go again under RESET until one is answered.
        var got: [[Float]] = []
        try consumer.setReceiveTimeout(milliseconds: 200)
        for attempt in 0..<50 where got.isEmpty {
            let first = InputMessage(inputKind: .features, flags: attempt == 0 ? [] : [.reset], xdim: 3, steps: 1, seq: 0, features: rows[0])
            _ = try producer.send(frames: [Array("a".utf8), InputEncoder.encode(first)])
            if let frames = try consumer.receiveFrames() { got.append(try OutputCodec.decode(frames[1]).values) }
        }
        try consumer.setReceiveTimeout(milliseconds: 10_000)
        for t in 1..<20 {
            _ = try producer.send(frames: [Array("a".utf8), InputEncoder.encode(InputMessage(inputKind: .features, xdim: 3, steps: 1, seq: UInt64(t), features: rows[t]))])
            guard let frames = try consumer.receiveFrames() else { Issue.record("no output for step \(t)"); break }
            got.append(try OutputCodec.decode(frames[1]).values)
        }
        #expect(got.count == 20)
        for (a, b) in zip(got, expected) { #expect(maxAbsDifference(a, b) < 1e-6) }
        producer.close()
        consumer.close()
        #expect(s.daemon.terminate() == 0)
    }

    @Test func plaintextAndUnknownProducersAreNeverProcessed() throws {
        let s = try start(["--no-learn"])
        let plain = try socket(s, .push, nil, endpoint: s.daemon.inputEndpoint)
        let stranger = try socket(s, .push, "stranger", endpoint: s.daemon.inputEndpoint)
        let consumer = try socket(s, .sub, "harness", endpoint: s.daemon.outputEndpoint)
        try consumer.subscribe([])
        try consumer.setReceiveTimeout(milliseconds: 300)
        for t in 0..<20 {
            _ = try plain.send(frames: [Array("plain".utf8), step(t)], dontWait: true)
            _ = try stranger.send(frames: [Array("stranger".utf8), step(t)], dontWait: true)
        }
        #expect(try eventually(10) { try denied(s, "input") >= 2 }, "a plaintext and an unknown producer are both counted")
        // An allowed producer's steps go through meanwhile, and nothing else is published.
        try s.daemon.send(key: "ok", InputMessage(inputKind: .features, xdim: 3, steps: 1, seq: 0, features: [1, 2, 3]))
        var keys: Set<String> = []
        while let frames = try consumer.receiveFrames() { keys.insert(String(decoding: frames[0], as: UTF8.self)) }
        #expect(!keys.contains("plain") && !keys.contains("stranger"), "\(keys)")
        let streams = (try s.daemon.control("streams")["streams"] as? [[String: Any]] ?? []).compactMap { $0["key"] as? String }
        #expect(streams.contains("ok") && !streams.contains("plain") && !streams.contains("stranger"), "\(streams)")
        #expect(s.daemon.log.contains("connection refused"))
        let metrics = try s.daemon.http("/metrics").1
        #expect(metrics.contains(#"recurd_auth_denied_total{endpoint="input"}"#))
        plain.close()
        stranger.close()
        consumer.close()
        #expect(s.daemon.terminate() == 0)
    }

    @Test func unknownAndPlaintextSubscribersReceiveNothing() throws {
        let s = try start(["--no-learn"])
        var subs: [ZMQSocket] = []
        for key in [nil, "stranger", "producer"] as [String?] {
            let sub = try socket(s, .sub, key, endpoint: s.daemon.outputEndpoint)
            try sub.subscribe([])
            try sub.setReceiveTimeout(milliseconds: 500)
            subs.append(sub)
        }
        #expect(try eventually(10) { try denied(s, "output") >= 3 }, "plaintext, unknown and producer-only subscribers are refused")
        for t in 0..<10 { try s.daemon.send(key: "a", InputMessage(inputKind: .features, xdim: 3, steps: 1, seq: UInt64(t), features: [1, 2, 3])) }
        #expect(try s.daemon.receive(count: 10).count == 10, "the harness, a consumer, gets every output")
        for sub in subs {
            #expect(try sub.receiveFrames() == nil, "a refused subscriber received an output")
            sub.close()
        }
        #expect(s.daemon.terminate() == 0)
    }

    @Test func controlAnswersOperatorsOnly() throws {
        let s = try start(["--no-learn"])
        for key in [nil, "stranger", "producer"] as [String?] {
            let req = try socket(s, .req, key, endpoint: s.daemon.controlEndpoint)
            try req.setReceiveTimeout(milliseconds: 700)
            _ = try req.send(frames: [Array("set lr=0.9".utf8)], dontWait: true)
            #expect(try req.receiveFrames() == nil, "\(key ?? "plaintext") got a control reply")
            req.close()
        }
        let op = try socket(s, .req, "operator", endpoint: s.daemon.controlEndpoint)
        try op.setReceiveTimeout(milliseconds: 10_000)
        _ = try op.send(frames: [Array("stats".utf8)])
        let reply = try op.receiveFrames()?.first.flatMap { try JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }
        #expect(reply?["ok"] as? Bool == true)
        #expect(reply?["lr"] as? Double == 0.005, "a refused client changed the learning rate")
        #expect(eventually(10) { ((try? denied(s, "control")) ?? 0) >= 3 })
        // The CLI's control client with the operator's certificate.
        let ctl = try runRecurd(["ctl", "--connect", s.daemon.controlEndpoint, "--curve-cert", path("keys/operator.key_secret"),
                                 "--server-key", path("keys/server.key"), "stats"])
        #expect(ctl.status == 0 && ctl.stdout.contains("\"ok\" : true"), "\(ctl.stdout)\(ctl.stderr)")
        op.close()
        #expect(s.daemon.terminate() == 0)
    }

    /// The CLI says which folder a refused key belongs in (or that the daemon wants CURVE), not
    /// "is the daemon running?".
    @Test func refusedClientsAreToldWhy() throws {
        let s = try start(["--no-learn"])
        let server = ["--server-key", path("keys/server.key")]
        func cert(_ name: String) -> [String] { ["--curve-cert", path("keys/\(name).key_secret")] + server }
        let ctl = try runRecurd(["ctl", "--connect", s.daemon.controlEndpoint, "--timeout", "2"] + cert("producer") + ["stats"])
        #expect(ctl.status != 0 && ctl.stderr.contains("refused this client's key") && ctl.stderr.contains("operators/ folder"), "\(ctl.stderr)")
        let plain = try runRecurd(["ctl", "--connect", s.daemon.controlEndpoint, "--timeout", "2", "stats"])
        // Said outright when libzmq reports the mechanism mismatch, as the other possibility when
        // the daemon closed the connection before the client read why (both happen).
        #expect(plain.status != 0 && plain.stderr.contains("has CURVE on"), "\(plain.stderr)")
        let tail = try runRecurd(["tail", "--connect", s.daemon.outputEndpoint, "--count", "1"] + cert("stranger"))
        #expect(tail.status != 0 && tail.stderr.contains("consumers/ folder"), "\(tail.stderr)")
        try "x,y,z\n1,2,3\n".write(toFile: path("s.csv"), atomically: true, encoding: .utf8)
        let stranger = try runRecurd(["publish", "--connect", s.daemon.inputEndpoint, "--socket", "push", "--control", "", "--stream", "s",
                                      "--wait", "3"] + cert("stranger") + [path("s.csv")])
        #expect(stranger.status != 0 && stranger.stderr.contains("producers/ folder"), "\(stranger.stderr)")
        // A producer that is not an operator still publishes, told why the daemon was not asked.
        let producer = try runRecurd(["publish", "--connect", s.daemon.inputEndpoint, "--socket", "push", "--control", s.daemon.controlEndpoint,
                                      "--stream", "s"] + cert("producer") + [path("s.csv")])
        #expect(producer.status == 0 && producer.stderr.contains("operators/ folder") && producer.stdout.contains("published 1 steps"),
                "\(producer.stdout)\(producer.stderr)")
        #expect(s.daemon.terminate() == 0)
    }

    @Test func producersOutsideTrainersNeverChangeTheModel() throws {
        let s = try start(["--sync-learning", "--k1", "2", "--k2", "4", "--lr", "0.05"], trainers: true)
        let producer = try socket(s, .push, "producer", endpoint: s.daemon.inputEndpoint)
        for t in 0..<60 { _ = try producer.send(frames: [Array("p".utf8), step(t)]) }
        #expect(try eventually(10) { (try s.daemon.control("stream p")["steps"] as? Int) == 60 }, "the producer's steps are served")
        let stats = try s.daemon.control("stats")
        #expect(stats["model_version"] as? Int == 0, "a producer outside trainers/ changed the model")
        #expect(stats["messages_not_learnt"] as? Int == 60)
        #expect((try s.daemon.control("stream p")["targets"] as? Int) == 59, "its steps are still scored")
        let trainer = try socket(s, .push, "trainer", endpoint: s.daemon.inputEndpoint)
        for t in 0..<20 { _ = try trainer.send(frames: [Array("t".utf8), step(t)]) }
        #expect(try eventually(10) { (try s.daemon.control("stats")["model_version"] as? Int ?? 0) > 0 }, "a trainer's steps train the model")
        #expect(!s.daemon.log.contains("trainers/ is empty"))
        // Emptying trainers/ (easy by accident: it stops all learning) is warned about on reload.
        for name in ["harness", "trainer"] { try FileManager.default.removeItem(atPath: path("clients/trainers/\(name).key")) }
        s.daemon.signal(SIGHUP)
        #expect(eventually(10) { s.daemon.log.contains("trainers/ is empty: no producer's steps are learnt from") }, "\(s.daemon.log)")
        producer.close()
        trainer.close()
        #expect(s.daemon.terminate() == 0)
    }

    /// A producer outside `trainers/` sending on a trainer's stream key: its steps are never the
    /// targets of the trainer's steps either (with next-step targets, x_t is step t−1's target).
    /// With k1 = 1 every such target would be an update of its own.
    @Test func producersOutsideTrainersChooseNoTargetsOnATrainersStream() throws {
        let s = try start(["--sync-learning", "--k1", "1", "--k2", "2", "--lr", "0.05"], trainers: true)
        let producer = try socket(s, .push, "producer", endpoint: s.daemon.inputEndpoint)
        let trainer = try socket(s, .push, "trainer", endpoint: s.daemon.inputEndpoint)
        // Lock-step, so that the two alternate on the stream: trainer, producer, trainer, …
        for t in 0..<40 {
            _ = try (t % 2 == 0 ? trainer : producer).send(frames: [Array("shared".utf8), step(t)])
            #expect(try eventually(10) { (try s.daemon.control("stream shared")["steps"] as? Int) == t + 1 }, "step \(t)")
        }
        #expect(try s.daemon.control("stats")["model_version"] as? Int == 0, "a producer outside trainers/ supplied a trained target")
        // The trainer's own consecutive steps do train.
        for t in 40..<44 { _ = try trainer.send(frames: [Array("shared".utf8), step(t)]) }
        #expect(try eventually(10) { (try s.daemon.control("stats")["model_version"] as? Int ?? 0) > 0 }, "a trainer's steps train the model")
        producer.close()
        trainer.close()
        #expect(s.daemon.terminate() == 0)
    }

    @Test func aKeyRemovedOnSIGHUPIsRefused() throws {
        let s = try start(["--no-learn"])
        let producer = try socket(s, .push, "producer", endpoint: s.daemon.inputEndpoint)
        for t in 0..<5 { _ = try producer.send(frames: [Array("p".utf8), step(t)]) }
        #expect(try eventually(10) { (try s.daemon.control("stream p")["steps"] as? Int) == 5 })
        try FileManager.default.removeItem(atPath: path("clients/producers/producer.key"))
        // A file that is no certificate beside it is skipped, not a reason to keep the old list
        // (and with it the removed key).
        try "who may produce\n".write(toFile: path("clients/producers/README.txt"), atomically: true, encoding: .utf8)
        s.daemon.signal(SIGHUP)
        #expect(eventually(10) { s.daemon.log.contains("allow-lists reloaded") })
        #expect(s.daemon.log.contains("a file skipped") && s.daemon.log.contains("README.txt"), "\(s.daemon.log)")
        let before = try denied(s, "input")
        // The open connection's messages are refused from now on…
        for t in 5..<10 { _ = try producer.send(frames: [Array("p".utf8), step(t)]) }
        #expect(try eventually(10) { try denied(s, "input") >= before + 5 })
        #expect((try s.daemon.control("stream p")["steps"] as? Int) == 5)
        // …and a new connection with the key is refused.
        let again = try socket(s, .push, "producer", endpoint: s.daemon.inputEndpoint)
        _ = try again.send(frames: [Array("p".utf8), step(10)], dontWait: true)
        #expect(try eventually(10) { try denied(s, "input") >= before + 6 })
        #expect((try s.daemon.control("stream p")["steps"] as? Int) == 5)
        producer.close()
        again.close()
        #expect(s.daemon.terminate() == 0)
    }

    /// A consumer removed on SIGHUP is cut off at once: the output re-binds, the others reconnect.
    @Test func aConsumerRemovedOnSIGHUPIsCutOff() throws {
        let s = try start(["--no-learn"])
        let consumer = try socket(s, .sub, "consumer", endpoint: s.daemon.outputEndpoint)
        try consumer.subscribe(Array("c".utf8))
        try consumer.setReceiveTimeout(milliseconds: 100)
        var seq = 0
        func sendUntil(_ socket: ZMQSocket, _ seconds: Double) throws -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                try s.daemon.send(key: "c", InputMessage(inputKind: .features, xdim: 3, steps: 1, seq: UInt64(seq), features: [1, 2, 3]))
                seq += 1
                if try socket.receiveFrames() != nil { return true }
            }
            return false
        }
        #expect(try sendUntil(consumer, 10), "the consumer receives while it is allowed")
        try FileManager.default.removeItem(atPath: path("clients/consumers/consumer.key"))
        s.daemon.signal(SIGHUP)
        #expect(eventually(10) { s.daemon.log.contains("output re-bound") })
        // The harness, still a consumer, is served again once it has reconnected…
        try s.daemon.output.setReceiveTimeout(milliseconds: 100)
        #expect(try sendUntil(s.daemon.output, 10), "an allowed subscriber reconnects")
        // …and the removed one gets nothing more.
        while try consumer.receiveFrames() != nil {}
        #expect(try !sendUntil(consumer, 1.5), "a removed consumer still receives")
        consumer.close()
        // Two more removals in quick succession: libzmq closes the old listener after `unbind`
        // returns, and a re-bind at once found the address in use and left the output unbound
        // for good. The harness is still served after both.
        for name in ["second", "third"] {
            _ = try keygen(name, roles: ["consumers"])
            s.daemon.signal(SIGHUP)
            #expect(eventually(10) { s.daemon.log.contains("consumers=\(name == "second" ? 2 : 3)") })
        }
        // Each removal's re-bind is awaited (a second SIGHUP before the first reload read the
        // folder would find both keys gone and re-bind once), the next sent at once after it.
        for (i, name) in ["second", "third"].enumerated() {
            try FileManager.default.removeItem(atPath: path("clients/consumers/\(name).key"))
            s.daemon.signal(SIGHUP)
            #expect(eventually(10) { s.daemon.log.components(separatedBy: "output re-bound").count == 3 + i }, "\(s.daemon.log)")
        }
        #expect(try sendUntil(s.daemon.output, 10), "the allowed subscriber is cut off for good")
        #expect(try s.daemon.http("/healthz").0 == 200)
        #expect(s.daemon.terminate() == 0)
    }
}
