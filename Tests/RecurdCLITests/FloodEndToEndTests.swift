import Foundation
import RecurdTestSupport
import RecurdWire
import Testing
import ZeroMQ

/// A flood of distinct keys through a daemon whose memory holds 10,000 streams: memory levels
/// off (the rest go to the store), and any stream can come back with its state.
@Suite(.serialized) struct FloodEndToEndTests {
    static let keys = Int(ProcessInfo.processInfo.environment["RECURD_FLOOD_KEYS"] ?? "") ?? 1_000_000

    static func rss(_ pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    @Test func millionKeysLevelOffAndComeBack() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let daemon = try DaemonHarness(arguments: ["--state-dir", dir.appendingPathComponent("state").path, "--max-streams", "10000",
                                                   "--checkpoint-interval", "5", "--high-water-mark", "1000000"], probeWidth: 1)
        let context = try ZMQContext()
        let push = try ZMQSocket(context: context, type: .push)
        try push.setSendHighWaterMark(2_000_000)
        try push.connect(daemon.inputEndpoint)
        let total = Self.keys
        var rss: [(keys: Int, bytes: Int)] = []
        let started = Date()
        var payload = [UInt8]()
        for k in 0..<total {
            let m = InputMessage(inputKind: .features, xdim: 1, steps: 1, seq: 0, features: [Float(k % 97) * 0.1])
            payload = InputEncoder.encode(m)
            #expect(try push.send(frames: [Array("flood-\(k)".utf8), payload]))
            // At most 20,000 messages in flight, so that the input queue's memory does not hide the streams'.
            if (k + 1) % 10_000 == 0 { try waitForSteps(daemon, atLeast: k + 1 - 10_000) }
            if (k + 1) % (total / 4) == 0 {
                // Let the daemon, and its store, catch up before reading its memory: the store's
                // backlog (up to 64 MB) is not what this measures.
                try waitForSteps(daemon, atLeast: k + 1)
                let storeDeadline = Date().addingTimeInterval(30)
                while Date() < storeDeadline,
                      ((try daemon.control("stats")["store"] as? [String: Any])?["streams_stored"] as? Int ?? 0) < k + 1 - 10_001 {
                    usleep(100_000)
                }
                rss.append((k + 1, Self.rss(daemon.pid)))
            }
        }
        let seconds = Date().timeIntervalSince(started)
        let stats = try daemon.control("stats")
        let stored = (stats["store"] as? [String: Any])?["streams_stored"] as? Int ?? 0
        #expect(stats["streams"] as? Int ?? 0 <= 10_000)
        print("flood: \(total) keys in \(String(format: "%.1f", seconds)) s; RSS " + rss.map { "\($0.keys): \($0.bytes >> 20) MB" }.joined(separator: ", ")
              + "; stored \(stored)")
        // Memory levels off: the second half of the keys adds little.
        let half = rss[1].bytes, end = rss[3].bytes
        #expect(end - half < 64 << 20, "RSS grew from \(half >> 20) MB to \(end >> 20) MB over the second half")
        // Every stream can come back: 1,000 of them, spread over the flood, continue their state.
        var rng = SystemRandomNumberGenerator()
        var sample = Set<Int>()
        while sample.count < 1_000 { sample.insert(Int.random(in: 0..<total, using: &rng)) }
        var back = 0
        for k in sample {
            let out = try daemon.step(key: "flood-\(k)", InputMessage(inputKind: .features, xdim: 1, steps: 1, seq: 1, features: [Float(k % 89) * 0.1]))
            if !out.flags.contains(.newState) && out.losses[0].isFinite && out.seq == 1 {
                back += 1
            } else {
                Issue.record("flood-\(k) came back as \(out)")
            }
        }
        #expect(back == 1_000, "\(back) of 1000 streams came back with their state")
        _ = try daemon.control("checkpoint")
        let after = try daemon.control("stats")
        let storedAfter = (after["store"] as? [String: Any])?["streams_stored"] as? Int ?? 0
        #expect(storedAfter >= total, "\(storedAfter) stored for \(total) keys")
        #expect(daemon.terminate() == 0)
    }

    func waitForSteps(_ daemon: DaemonHarness, atLeast n: Int) throws {
        let deadline = Date().addingTimeInterval(600)
        while (try daemon.control("stats")["steps"] as? Int ?? 0) < n {
            guard Date() < deadline else { throw HarnessError("the daemon did not take \(n) steps in time") }
            usleep(100_000)
        }
    }
}
