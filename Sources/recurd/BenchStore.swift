import ArgumentParser
import Foundation
import RecurdWire
import ZeroMQ

/// `recurd bench store`: what the stream store costs, against a running daemon (its input a PULL
/// socket). Two measurements, one JSON line each:
///
/// - `flood`: `--keys` distinct streams, each sent one message of `--steps` steps, at most
///   `--in-flight` messages unanswered, reading the daemon's resident memory (`--pid`) at each
///   quarter: memory per stream in memory, and whether memory levels off once the streams
///   outnumber `max-streams`.
/// - `returning`: one-step messages in lock step, first round-robin over `--resident` streams
///   (all in memory), then over `--returning` streams (more than the daemon's `max-streams`, so
///   each message's stream was evicted since its last one and comes back from the store): the
///   latency of each, and the difference.
struct BenchStore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "The stream store's costs against a running daemon: memory per stream under a flood of keys, and the latency of a returning stream."
    )

    enum Mode: String, ExpressibleByArgument { case flood, returning }

    @Argument(help: "flood or returning.") var mode: Mode
    @Option(help: "The daemon's input (PULL).") var input: String
    @Option(help: "The daemon's output (PUB).") var output: String
    @Option(help: "The daemon's control endpoint.") var control: String
    @Option(parsing: .unconditional, help: "The daemon's process id (flood: memory readings).") var pid: Int32 = 0
    @Option(parsing: .unconditional, help: "Features per step.") var xdim: Int = 8
    @Option(parsing: .unconditional, help: "flood: distinct keys.") var keys: Int = 100_000
    @Option(parsing: .unconditional, help: "flood: steps per key (one message).") var steps: Int = 1
    @Option(name: .customLong("in-flight"), parsing: .unconditional, help: "flood: messages sent and not yet answered, at most.") var inFlight: Int = 20_000
    @Option(parsing: .unconditional, help: "returning: streams that stay in memory.") var resident: Int = 50
    @Option(parsing: .unconditional, help: "returning: streams that outnumber max-streams.") var returning: Int = 400
    @Option(parsing: .unconditional, help: "returning: messages per phase.") var messages: Int = 4_000
    @Option(help: "Prefix of the keys (so runs against one daemon do not collide).") var prefix: String = "bench"

    func run() throws {
        let context = try ZMQContext()
        let push = try ZMQSocket(context: context, type: .push)
        try push.setSendHighWaterMark(1_000_000)
        try push.setLinger(milliseconds: 0)
        try push.connect(input)
        let sub = try ZMQSocket(context: context, type: .sub)
        try sub.setReceiveHighWaterMark(10_000_000)
        try sub.subscribe([])
        try sub.setReceiveTimeout(milliseconds: 30_000)
        try sub.connect(output)
        usleep(300_000)
        switch mode {
        case .flood: try flood(push, sub)
        case .returning: try returning(push, sub)
        }
    }

    static func rss(_ pid: Int32) -> Int {
        guard pid > 0, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    func stats() throws -> [String: Any] {
        let context = try ZMQContext()
        let req = try ZMQSocket(context: context, type: .req)
        try req.setLinger(milliseconds: 0)
        try req.setReceiveTimeout(milliseconds: 30_000)
        try req.connect(control)
        try req.send(frames: [Array("stats".utf8)])
        guard let reply = try req.receiveFrames()?.first, let o = try JSONSerialization.jsonObject(with: Data(reply)) as? [String: Any] else {
            throw CLIError("no stats from \(control)")
        }
        return o
    }

    func message(seq: UInt64, steps n: Int, value: Float) -> [UInt8] {
        var values = [Float](repeating: 0, count: n * xdim)
        for i in 0..<values.count { values[i] = value + Float(i % (xdim + 3)) * 0.1 }
        return InputEncoder.encode(InputMessage(inputKind: .features, xdim: xdim, steps: n, seq: seq, timestamp: BenchLoad.realtime(), features: values))
    }

    func flood(_ push: ZMQSocket, _ sub: ZMQSocket) throws {
        let frame = ZMQMessage()
        var answered = 0
        func drain(until target: Int) throws {
            while answered < target {
                guard try sub.receive(into: frame) else { throw CLIError("flood: no prediction within 30 s (\(answered) answered)") }
                // A message's last output (a long one is answered in chunks, `.more` on all but the last).
                if !frame.hasMore, let flags = OutputCodec.flags(ofBinary: frame.bytes), !flags.contains(.more) { answered += 1 }
            }
        }
        // One stream first, so the model exists and the base memory is measured with it.
        try push.send(frames: [Array("\(prefix)-base".utf8), message(seq: 0, steps: steps, value: 0.5)])
        try drain(until: 1)
        usleep(200_000)
        let base = Self.rss(pid)
        var readings: [[String: Any]] = []
        let started = Date()
        for k in 0..<keys {
            try push.send(frames: [Array("\(prefix)-\(k)".utf8), message(seq: 0, steps: steps, value: Float(k % 101) * 0.01)])
            if k + 1 - answered >= inFlight { try drain(until: k + 2 - inFlight) }
            if (k + 1) % max(1, keys / 4) == 0 {
                try drain(until: k + 2)
                readings.append(["keys": k + 1, "rss_bytes": Self.rss(pid)])
            }
        }
        try drain(until: keys + 1)
        let seconds = Date().timeIntervalSince(started)
        usleep(500_000)
        let s = try stats()
        let store = s["store"] as? [String: Any] ?? [:]
        let last = readings.last?["rss_bytes"] as? Int ?? 0
        let inMemory = s["streams"] as? Int ?? 0
        // The slope between the halfway and the last reading: what one more stream costs, without
        // the buffers that grow once to their working size early on.
        var marginal = 0.0
        if readings.count >= 4, let k1 = readings[1]["keys"] as? Int, let r1 = readings[1]["rss_bytes"] as? Int,
           let k3 = readings[3]["keys"] as? Int, let r3 = readings[3]["rss_bytes"] as? Int, k3 > k1 {
            marginal = Double(r3 - r1) / Double(k3 - k1)
        }
        emit(["bench": "store-flood", "keys": keys, "steps_per_key": steps, "seconds": seconds, "keys_per_second": Double(keys) / seconds,
              "rss_base_bytes": base, "rss": readings, "streams_in_memory": inMemory,
              "rss_per_stream_in_memory_bytes": inMemory > 0 ? Double(last - base) / Double(inMemory) : 0,
              "rss_marginal_bytes_per_key": marginal,
              "streams_stored": store["streams_stored"] ?? 0, "store_bytes": store["bytes"] ?? 0,
              "store_bytes_per_stream": (store["streams_stored"] as? Int).map { $0 > 0 ? Double(store["bytes"] as? Int ?? 0) / Double($0) : 0 } ?? 0,
              "evictions": s["evictions"] ?? [:]])
    }

    func returning(_ push: ZMQSocket, _ sub: ZMQSocket) throws {
        let frame = ZMQMessage()
        func lockstep(streams: Int, tag: String) throws -> [UInt64] {
            var seqs = [UInt64](repeating: 0, count: streams)
            var latencies: [UInt64] = []
            // Two rounds first, untimed: every stream exists (and, for the returning set, is in the store).
            for i in 0..<(messages + 2 * streams) {
                let s = i % streams
                let key = Array("\(prefix)-\(tag)-\(s)".utf8)
                let t0 = DispatchTime.now().uptimeNanoseconds
                try push.send(frames: [key, self.message(seq: seqs[s], steps: 1, value: Float(s % 13) * 0.1)])
                seqs[s] += 1
                while true {
                    guard try sub.receive(into: frame) else { throw CLIError("returning: no prediction within 30 s") }
                    if frame.hasMore, Array(frame.bytes) == key {
                        _ = try sub.receive(into: frame)
                        break
                    }
                }
                if i >= 2 * streams { latencies.append(DispatchTime.now().uptimeNanoseconds - t0) }
            }
            return latencies.sorted()
        }
        func percentile(_ l: [UInt64], _ p: Double) -> Double { Double(l[min(l.count - 1, Int(Double(l.count) * p))]) / 1e3 }
        let before = try stats()
        let resident = try lockstep(streams: self.resident, tag: "resident")
        let back = try lockstep(streams: returning, tag: "returning")
        let after = try stats()
        func restored(_ s: [String: Any]) -> Int { (s["store"] as? [String: Any])?["records_restored"] as? Int ?? 0 }
        emit(["bench": "store-returning", "messages": messages, "resident_streams": self.resident, "returning_streams": returning,
              "resident_p50_us": percentile(resident, 0.5), "resident_p99_us": percentile(resident, 0.99),
              "returning_p50_us": percentile(back, 0.5), "returning_p99_us": percentile(back, 0.99),
              "extra_p50_us": percentile(back, 0.5) - percentile(resident, 0.5),
              "records_restored": restored(after) - restored(before)])
    }
}
