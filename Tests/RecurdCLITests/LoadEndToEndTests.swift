import Foundation
import RecurdTestSupport
import RecurdWire
import Testing
import ZeroMQ

/// Serving under load with the real binary: a long message does not hold others up, nothing is
/// lost unseen, and the protocol's edge cases behave as PROTOCOL.md says.
@Suite(.serialized) struct LoadEndToEndTests {
    /// This test's own directory, removed after it (Swift Testing makes a suite instance per test).
    let scratch = ScratchDirectory()
    var dir: URL { scratch.url }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func featureModel(inputs: Int = 3) throws -> String {
        let file = path("m\(inputs).safetensors")
        let r = try runRecurd(["init", "--cell", "lstm", "--hidden", "16", "--input-size", "\(inputs)", "--output-size", "\(inputs)", "--head", "linear",
                               "--seed", "2", "-o", file])
        #expect(r.status == 0, "\(r.stderr)")
        return file
    }

    /// A 300,000-step text message, and meanwhile one-step probes on another stream: the probes
    /// are answered while the long message is still running (not behind it), and all 300,000
    /// predictions arrive in chunks. (Their latency is measured by Benchmarks/longmessage.py; a
    /// test asserts no timing.)
    @Test func longMessageDoesNotHoldOthersUp() throws {
        let daemon = try DaemonHarness(arguments: ["--new-model-hidden", "32", "--no-learn"], probeText: true)
        let text = (0..<300_000).map { UInt32(97 + $0 % 26) }
        let endpoint = daemon.inputEndpoint
        try daemon.send(key: "book", InputMessage(inputKind: .text, xdim: 1, steps: text.count, seq: 0, tokens: text))
        // Probes from another thread, one every 2 ms, each timed to its prediction.
        let sentAt = ProbeTimes()
        let prober = Thread {
            guard let context = try? ZMQContext(), let probe = try? ZMQSocket(context: context, type: .push), (try? probe.connect(endpoint)) != nil else { return }
            for i in 0..<400 {
                sentAt.sent(i)
                _ = try? probe.send(frames: [Array("probe".utf8), InputEncoder.encode(InputMessage(inputKind: .text, xdim: 1, steps: 1, seq: UInt64(i), tokens: [32]))])
                usleep(2_000)
            }
        }
        prober.start()
        var bookSteps = 0, chunks = 0, next: UInt64 = 0, done = false
        var latencies: [Double] = []
        var probesBeforeTheEnd = 0, sentBeforeTheEnd = 0
        while !(done && latencies.count == 400) {
            guard let m = try daemon.receive() else { break }
            if m.key == "book" {
                #expect(m.message.seq == next)
                next += UInt64(m.message.steps)
                bookSteps += m.message.steps
                chunks += 1
                done = !m.message.flags.contains(.more)
                if done { sentBeforeTheEnd = sentAt.count }
                #expect(m.message.steps <= 64)
            } else if m.key == "probe" {
                latencies.append(sentAt.elapsed(Int(m.message.seq)))
                if !done { probesBeforeTheEnd += 1 }
            }
        }
        while !prober.isFinished { usleep(1_000) }
        #expect(bookSteps == 300_000 && done, "\(bookSteps) steps in \(chunks) chunks")
        #expect(latencies.count == 400, "\(latencies.count) of 400 probes answered")
        // Had the probes waited behind the long message, none would come before its last chunk.
        // (Compared with the probes sent by then, not a number: how far the long message gets
        // while the prober sends depends on the machine. A few may be in flight at its end.)
        #expect(sentBeforeTheEnd >= 20 && probesBeforeTheEnd + 10 >= sentBeforeTheEnd,
                "only \(probesBeforeTheEnd) of the \(sentBeforeTheEnd) probes sent while the long message ran were answered before its end")
        #expect(try daemon.http("/healthz").0 == 200)
    }

    /// A payload a little over the limit is refused and counted, and the valid messages sent
    /// after it on the same connection all arrive.
    @Test func oversizedMessageIsCountedAndLosesNothingElse() throws {
        let daemon = try DaemonHarness(arguments: ["--model", try featureModel(), "--no-learn", "--max-message-bytes", "4096"])
        let big = InputMessage(inputKind: .features, xdim: 3, steps: 1000, seq: 0, features: [Float](repeating: 0.5, count: 3000))   // 12 KiB
        try daemon.send(key: "a", big)
        for i in 0..<200 { try daemon.send(key: "a", InputMessage(inputKind: .features, xdim: 3, steps: 1, seq: UInt64(i), features: [1, 2, 3])) }
        let outs = try daemon.receive(count: 200)
        #expect(outs.map(\.message.seq) == (0..<200).map(UInt64.init))
        let stats = try daemon.control("stats")
        #expect((stats["rejected"] as? [String: Int])?["too_large"] == 1, "\(stats)")
        #expect((stats["input_connections"] as? [String: Int])?["disconnected"] == nil)
    }

    /// A subscriber that stops reading: once its queue is full, the outputs it cannot take are
    /// counted as dropped, and output_messages counts only what the socket took.
    @Test func stuckSubscriberDropsAreCounted() throws {
        let daemon = try DaemonHarness(arguments: ["--model", try featureModel(), "--no-learn", "--high-water-mark", "100"])
        let context = try ZMQContext()
        let stuck = try ZMQSocket(context: context, type: .sub)
        try stuck.setReceiveHighWaterMark(100)
        try stuck.subscribe([])
        try stuck.connect(daemon.outputEndpoint)
        usleep(300_000)
        let sent = 20_000
        for i in 0..<sent { try daemon.send(key: "s", InputMessage(inputKind: .features, xdim: 3, steps: 1, seq: UInt64(i), features: [1, 2, 3])) }
        var stats = try daemon.control("stats")
        let deadline = Date().addingTimeInterval(60)
        while (stats["steps"] as? Int ?? 0) < sent + 1 && Date() < deadline { usleep(100_000); stats = try daemon.control("stats") }
        let dropped = stats["output_dropped"] as? Int ?? 0
        let handed = stats["output_messages"] as? Int ?? 0
        #expect(dropped > 0, "\(stats)")
        #expect(dropped + handed >= sent, "\(dropped) dropped + \(handed) handed over for \(sent) predictions")
        let (_, metrics) = try daemon.http("/metrics")
        let line = metrics.split(separator: "\n").first { $0.hasPrefix("recurd_output_dropped_total ") }
        #expect(line.flatMap { Double($0.split(separator: " ").last ?? "") } == Double(dropped), "\(line ?? "no recurd_output_dropped_total")")
        stuck.close()
    }

    /// JSON RESET/END and binary zero-step RESET/END of any kind and width fit any model; the
    /// next output after a zero-step RESET carries the new-state flag; a RESET without a seq
    /// takes the client's next seq as it comes; nothing is scored or learnt across a gap.
    @Test func protocolEdgeCases() throws {
        let daemon = try DaemonHarness(arguments: ["--model", try featureModel(inputs: 3), "--no-learn", "--output-format", "json"])
        func json(_ key: String, _ text: String) throws { try daemon.send(frames: [Array(key.utf8), Array(text.utf8)]) }
        try daemon.send(key: "k", InputMessage(inputKind: .features, xdim: 3, steps: 2, seq: 0, features: [1, 2, 3, 4, 5, 6]))
        _ = try daemon.receive(count: 1)
        // JSON {"reset":true} without a seq on a 3-feature model; then the client's own numbering.
        try json("k", #"{"reset": true}"#)
        try daemon.send(key: "k", InputMessage(inputKind: .features, xdim: 3, steps: 1, seq: 17, features: [1, 2, 3]))
        let afterReset = try daemon.receive(count: 1)[0].message
        #expect(afterReset.flags == .newState && afterReset.seq == 17, "\(afterReset)")
        // Binary zero-step RESET with xdim 0 and another input kind.
        try daemon.send(key: "k", InputMessage(inputKind: .text, flags: .reset, xdim: 1, steps: 0, seq: 0))
        try daemon.send(key: "k", InputMessage(inputKind: .features, xdim: 3, steps: 1, seq: 0, features: [1, 2, 3]))
        #expect(try daemon.receive(count: 1)[0].message.flags == .newState)
        // A gap: the first step after it has no loss, the next one does.
        try daemon.send(key: "k", InputMessage(inputKind: .features, xdim: 3, steps: 2, seq: 50, features: [1, 2, 3, 4, 5, 6]))
        let gap = try daemon.receive(count: 1)[0].message
        #expect(gap.flags == .gap && gap.losses[0].isNaN && gap.losses[1].isFinite, "\(gap)")
        // JSON END and binary END with xdim 0: the stream is forgotten.
        try json("k", #"{"end": true}"#)
        try daemon.send(key: "j", InputMessage(inputKind: .features, xdim: 3, steps: 1, seq: 0, features: [1, 2, 3]))
        _ = try daemon.receive(count: 1)
        try daemon.send(key: "j", InputMessage(inputKind: .features, flags: .end, xdim: 0, steps: 0, seq: 1))
        try daemon.send(key: "z", InputMessage(inputKind: .features, xdim: 3, steps: 1, seq: 0, features: [1, 2, 3]))
        _ = try daemon.receive(count: 1)
        let stats = try daemon.control("stats")
        #expect(stats["rejected_total"] as? Int == 0, "\(stats)")
        #expect(try daemon.control("stream k")["ok"] as? Bool == false && (try daemon.control("stream j")["ok"] as? Bool) == false)
        // A large JSON ts comes back exact.
        try json("t", #"{"seq": 0, "ts": 1700000000123456789, "x": [1, 2, 3]}"#)
        #expect(try daemon.receive(count: 1)[0].message.timestamp == 1_700_000_000_123_456_789)
        // An oversized control request gets an error reply, not silence.
        let reply = try daemon.control(String(repeating: "x", count: 200_000))
        #expect(reply["ok"] as? Bool == false && (reply["error"] as? String ?? "").contains("bytes"))
        // A request of several frames (a REQ may send them) gets an error reply; the daemon goes on.
        for frames in [[Array("stats".utf8), Array("x".utf8)], [[], []], [Array("stats".utf8), [], Array("drop k".utf8)]] {
            let req = try ZMQSocket(context: daemon.context, type: .req)
            defer { req.close() }
            try req.setLinger(milliseconds: 0)
            try req.setReceiveTimeout(milliseconds: 10_000)
            try req.connect(daemon.controlEndpoint)
            _ = try req.send(frames: frames)
            let answer = try req.receiveFrames()?.first.map { String(decoding: $0, as: UTF8.self) } ?? "no reply"
            #expect(answer.contains("\"ok\":false") && answer.contains("one frame; this one had \(frames.count)"), "\(answer)")
        }
        #expect(try daemon.control("stats")["ok"] as? Bool == true)
        // State-changing control commands are logged with their arguments.
        _ = try daemon.control("set lr=0.002")
        _ = try daemon.control("drop z")
        #expect(daemon.log.contains("setting=lr") && daemon.log.contains("stream dropped by control command") && daemon.log.contains("stream=z"))
    }
}

/// Send times of probes, shared with the sending thread.
final class ProbeTimes: @unchecked Sendable {
    private let lock = NSLock()
    private var times: [Int: UInt64] = [:]
    func sent(_ i: Int) { lock.withLock { times[i] = DispatchTime.now().uptimeNanoseconds } }
    func elapsed(_ i: Int) -> Double { lock.withLock { Double(DispatchTime.now().uptimeNanoseconds - (times[i] ?? 0)) / 1e9 } }
    /// Probes sent so far.
    var count: Int { lock.withLock { times.count } }
}
