import ArgumentParser
import Foundation
import RecurdData
import RecurdNumerics
import RecurdWire
import ZeroMQ

struct PublishCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish", abstract: "Publish a recorded CSV or text file as one stream.",
        discussion: """
        Before sending, publish asks the daemon's control endpoint where the stream stands and continues its numbering, \
        so a file published twice under one key is two runs of the stream, not duplicates (--reset starts the stream \
        afresh instead). It waits until the daemon's input is there, shows progress, and at the end reports what the \
        daemon took, its progressive loss, and whether learning kept up.
        """)

    @Option(help: "Endpoint of the daemon's input.") var connect = "tcp://127.0.0.1:5555"
    @Option(help: "The daemon's control endpoint, read for the stream's next seq and the summary ('' to skip).") var control = "tcp://127.0.0.1:5557"
    @Option(help: "Stream key.") var stream: String
    @Option(help: "csv, text (a token per byte) or tokens (token ids separated by commas, spaces or lines; default: from the file name, .csv is CSV, else text).") var format: StreamFormat?
    @Option(parsing: .unconditional, help: "0-based CSV columns to send as features.") var columns: String?
    @Option(parsing: .unconditional, help: "Steps per second (0: as fast as possible).") var rate: Double = 0
    @Option(name: .customLong("steps-per-message"), parsing: .unconditional, help: "Steps in each message.") var stepsPerMessage: Int = 1
    @Option(help: "pub (to a SUB input, the default) or push (to a PULL input).") var socket: String = "pub"
    @Option(parsing: .unconditional, help: "Seq of the first step (default: the stream's next seq as the daemon reports it, else 0).") var seq: UInt64?
    @Option(parsing: .unconditional, help: "Seconds to wait for the daemon's input to be there before giving up.") var wait: Double = 5
    @Flag(help: "Start the stream afresh: RESET on the first message, seq from 0.") var reset = false
    @Flag(help: "Set END on the last message (the daemon forgets the stream after it).") var end = false
    @Flag(help: "Send JSON payloads instead of binary.") var json = false
    @Flag(help: "No progress lines.") var quiet = false
    @OptionGroup var curve: CurveClientOptions
    @Argument(help: "The file to publish.") var file: String

    func validate() throws {
        if stepsPerMessage < 1 { throw ValidationError("--steps-per-message must be at least 1") }
        if !(wait > 0 && wait <= 86_400) { throw ValidationError("--wait must be between 0 and 86400 seconds") }
        if !["pub", "push"].contains(socket) { throw ValidationError("--socket is pub (the daemon's default SUB input) or push (an input with --input-socket pull)") }
        if stream.utf8.isEmpty || stream.utf8.count > 255 { throw ValidationError("--stream must be 1–255 bytes") }
        if rate < 0 || !rate.isFinite { throw ValidationError("--rate must be 0 (as fast as possible) or a positive number of steps per second") }
        if reset && seq != nil { throw ValidationError("--reset numbers the stream from 0; leave out --seq") }
        if let columns { _ = try parseColumns(columns) }
    }

    func run() throws {
        let bytes = try FileIO.read(file, what: "input")
        guard !bytes.isEmpty else { throw CLIError("\(file): no steps to publish") }
        let context = try ZMQContext()
        // 3 s: a busy daemon (or machine) may take over a second to answer; none at all means publishing blind.
        let daemon = control.isEmpty ? nil : ControlClient(endpoint: control, timeout: 3, context: context, curve: curve)
        var before: [String: Any]?
        if let daemon {
            do {
                before = try daemon.object("stats")
                if before == nil {
                    note("no reply from control \(control): publishing blind (pass --control to name the daemon's control endpoint, or --control '' to skip)")
                }
            } catch {
                // A producer's key need not be an operator's: the steps can still go in.
                note("\(error); publishing blind (--control '' skips asking the daemon)")
            }
        }
        let input = before == nil ? nil : Self.modelInput(daemon?.request("model"))
        // Without --format: a .csv file is CSV; any other is text, unless the daemon's model reads
        // token ids of a vocabulary other than the 256 bytes.
        let vocabulary = input?.vocabulary
        let idsModel = vocabulary.map { $0 != 256 } ?? false
        let chosen = format ?? (file.lowercased().hasSuffix(".csv") ? .csv : idsModel ? .tokens : .text)
        func served(_ e: CLIError) -> CLIError { CLIError("\(e.message) (the model the daemon at \(control) serves; nothing was sent)") }
        let data: RecordedStream
        do {
            data = try ModelLoading.read(bytes, from: file, format: chosen, columns: try columns.map { try parseColumns($0) }, vocabulary: vocabulary)
        } catch let e as CLIError where chosen == .tokens && vocabulary != nil {
            throw served(e)
        }
        let total = data.count
        guard total > 0 else { throw CLIError("\(file): no steps to publish") }
        if let input {
            // The daemon would reject every step, counted but unexplained here: say why first.
            do { try ModelLoading.check(data, from: file, format: chosen, against: input) } catch let e as CLIError { throw served(e) }
        }
        // Where the daemon has the stream: its next seq (to continue it) and the steps it has taken,
        // to tell at the end whether all of this run was (not with --reset, which may start the
        // count again, nor with --end, after which the stream is gone).
        let known = before == nil || reset ? nil : daemon?.request("stream", key: stream)
        // Not knowing where the daemon has the stream (no control, a key that is not an
        // operator's, or no answer to `stream` in time), the steps go without seq, which only
        // JSON can leave out: each message then takes the stream's next seq, so a second run
        // continues the stream instead of being dropped as duplicates.
        let unnumbered = known == nil && seq == nil && !reset
        if unnumbered {
            note("sending without seq (as JSON), so that the daemon continues the stream's numbering: it could not be asked where '\(stream)' is")
        }
        let first = startSeq(known)
        let stepsBefore: UInt64? = end ? nil : known.map { ($0["steps"] as? NSNumber)?.uint64Value ?? 0 }

        let s = try openInput(context)
        defer { s.close() }
        let key = Array(stream.utf8)
        let started = Date()
        var lastProgress = started
        var sent = 0, start = 0
        while start < total {
            let n = min(stepsPerMessage, total - start)
            var flags: WireFlags = []
            if reset && start == 0 { flags.insert(.reset) }
            if end && start + n == total { flags.insert(.end) }
            let payload = Self.payload(data, start: start, count: n, seq: unnumbered ? nil : first + UInt64(start), flags: flags, json: json || unnumbered,
                                       asIDs: chosen == .tokens)
            _ = try s.send(frames: [key, payload])
            sent += 1
            start += n
            if rate > 0 {
                let wait = started.addingTimeInterval(Double(start) / rate).timeIntervalSinceNow
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
            }
            if !quiet && Date().timeIntervalSince(lastProgress) >= 2 {
                lastProgress = Date()
                let speed = Double(start) / lastProgress.timeIntervalSince(started)
                note(String(format: "  %d of %d steps sent (%.0f%%), %.0f steps/s", start, total, 100 * Double(start) / Double(total), speed))
            }
        }
        print("published \(total) steps of '\(stream)' (\(unnumbered ? "without seq" : "seq \(first)…\(first + UInt64(total) - 1)")) in \(sent) messages to \(connect)")
        if let daemon, let before {
            try summarise(daemon, before: before, expectedNext: unnumbered ? nil : first + UInt64(total), stepsBefore: stepsBefore, total: total, perToken: idsModel)
        }
    }

    /// The input of the daemon's model from its `model` reply; nil before it has one.
    static func modelInput(_ reply: [String: Any]?) -> InputKind? {
        guard let reply, reply["ok"] as? Bool == true, let size = (reply["input_size"] as? NSNumber)?.intValue else { return nil }
        switch reply["input"] as? String {
        case "features": return .features(size: size)
        case "tokens":
            guard let v = (reply["vocabulary"] as? NSNumber)?.intValue else { return nil }
            return .tokens(vocabulary: v, embedding: size)
        default: return nil
        }
    }

    /// Where this run's numbering starts: 0 on --reset, --seq when given, else where the daemon
    /// has the stream (so a second run continues it rather than being dropped as duplicates).
    private func startSeq(_ known: [String: Any]?) -> UInt64 {
        if reset { return 0 }
        if let seq { return seq }
        guard let known, known["ok"] as? Bool == true, let next = (known["next_seq"] as? NSNumber)?.uint64Value, next > 0 else { return 0 }
        note("stream '\(stream)' is at seq \(next) in the daemon: continuing from there (--reset starts it afresh)")
        return next
    }

    /// The input socket, connected, once the daemon is there: an XPUB (to a SUB input) returns
    /// when the daemon's subscription arrives, so nothing sent is lost to a subscription still on
    /// its way; a PUSH (to a PULL input) when a connection has completed its handshake.
    private func openInput(_ context: ZMQContext) throws -> ZMQSocket {
        let hint = "is `recurd serve` running with --input \(connect)" + (socket == "pub" ? "? (an input with --input-socket pull needs --socket push)" : " --input-socket pull? (the default SUB input needs --socket pub)")
        if socket == "pub" {
            let s = try ZMQSocket(context: context, type: .xpub)
            // Block rather than drop when the daemon is slower than the file: publish's job is to deliver it.
            try s.setXPubNoDrop(true)
            try s.setSendHighWaterMark(100_000)
            try s.setLinger(milliseconds: 30_000)
            try s.setReceiveTimeout(milliseconds: Int32(wait * 1000))
            try curve.apply(to: s)
            let watch = try HandshakeWatch(s, role: .producers)
            defer { watch.stop() }
            try s.connect(connect)
            guard let subscription = try s.receiveFrames(), subscription.first?.first == 1 else {
                let why = watch.refusal(hint: hint) ?? hint
                s.close()
                throw CLIError("nobody subscribed at \(connect) within \(wait) s: \(why)")
            }
            return s
        }
        let s = try ZMQSocket(context: context, type: .push)
        try s.setImmediate(true)
        try s.setSendHighWaterMark(100_000)
        try s.setLinger(milliseconds: 30_000)
        try curve.apply(to: s)
        let watch = try HandshakeWatch(s, role: .producers)
        defer { watch.stop() }
        try s.connect(connect)
        // With IMMEDIATE a PUSH queues only to completed connections: it is writable once one is.
        guard try ZMQPoller(writable: [s]).poll(timeoutMilliseconds: Int(wait * 1000)).first == true else {
            let why = watch.refusal(hint: hint) ?? hint
            s.close()
            throw CLIError("no daemon took a connection at \(connect) within \(wait) s: \(why)")
        }
        return s
    }

    /// Waits (up to a few seconds) for the daemon to reach the end of what was sent, then says
    /// what it took: steps, duplicates and rejections, the stream's loss, and the trained share.
    /// `expectedNext` nil: the steps went without seq, so where the stream should end is not known.
    private func summarise(_ daemon: ControlClient, before: [String: Any], expectedNext: UInt64?, stepsBefore: UInt64?, total: Int, perToken: Bool) throws {
        // The daemon numbers a step when it admits it and counts it when it has stepped it; the
        // trainer runs behind both. Wait until the stream is at the end and the counts settle.
        var info: [String: Any]?
        var after: [String: Any]?
        var last: (UInt64, UInt64)?
        let deadline = Date().addingTimeInterval(max(10, wait))
        repeat {
            Thread.sleep(forTimeInterval: 0.3)
            if !end { info = daemon.request("stream", key: stream) }
            after = daemon.request("stats")
            let now = ((after?["steps"] as? NSNumber)?.uint64Value ?? 0, (after?["windows_trained"] as? NSNumber)?.uint64Value ?? 0)
            let arrived = end || expectedNext.map { ((info?["next_seq"] as? NSNumber)?.uint64Value ?? 0) >= $0 } ?? true
            if arrived, let l = last, l == now { break }
            last = now
        } while Date() < deadline
        guard let after else { note("the daemon did not answer 'stats' after publishing"); return }
        func delta(_ k: String) -> UInt64 {
            let a = (after[k] as? NSNumber)?.uint64Value ?? 0, b = (before[k] as? NSNumber)?.uint64Value ?? 0
            return a >= b ? a - b : 0
        }
        let duplicates = delta("duplicates"), rejected = delta("rejected_total"), gaps = delta("gaps")
        var line = "the daemon (all streams, during this run): \(delta("steps")) steps taken, \(duplicates) duplicate\(duplicates == 1 ? "" : "s"), \(rejected) rejected, \(gaps) gap\(gaps == 1 ? "" : "s")"
        if rejected > 0 {
            let was = before["rejected"] as? [String: Any] ?? [:], now = after["rejected"] as? [String: Any] ?? [:]
            let reasons = now.keys.sorted().compactMap { k -> String? in
                let d = ((now[k] as? NSNumber)?.uint64Value ?? 0) &- ((was[k] as? NSNumber)?.uint64Value ?? 0)
                return d > 0 ? "\(k) \(d)" : nil
            }
            line += " (" + (reasons.isEmpty ? "see `recurd ctl stats`" : reasons.joined(separator: ", ")) + "; the daemon's log says why)"
        }
        print(line)
        if duplicates > 0 {
            let remedy = seq != nil ? "Leave out --seq to continue the stream" : "Another producer may have sent to it meanwhile; pass --seq to number the steps yourself"
            note("warning: \(duplicates) message\(duplicates == 1 ? " was" : "s were") dropped as duplicates: their seq was behind the stream's. \(remedy), or pass --reset to start it afresh.")
        }
        if !end {
            if let info, info["ok"] as? Bool == true {
                let next = (info["next_seq"] as? NSNumber)?.uint64Value ?? 0
                var s = "stream '\(stream)': next seq \(next)"
                // The daemon's bits_per_byte is the mean loss in bits per token: per byte for text.
                if let bits = info["bits_per_byte"] as? NSNumber { s += String(format: ", %.3f bits/%@ progressive", bits.doubleValue, perToken ? "token" : "byte") } else if let m = info["mean_loss"] as? NSNumber { s += String(format: ", mean progressive loss %.4g", m.doubleValue) }
                print(s)
                if let expectedNext, next < expectedNext {
                    note("warning: the daemon has '\(stream)' at seq \(next), not \(expectedNext): \(expectedNext - next) steps are still queued, were dropped as duplicates or were lost (`recurd ctl stats` tells which)")
                }
                // A run whose steps the daemon refused has failed, whatever reached the socket. Its
                // own stream's count tells (the rejections are counted over all streams).
                let stepped = ((info["steps"] as? NSNumber)?.uint64Value ?? 0) &- (stepsBefore ?? 0)
                let short = stepsBefore.map { _ in stepped < UInt64(total) } ?? (next < (expectedNext ?? 0))
                if rejected > 0 && short {
                    throw CLIError("the daemon took \(stepsBefore == nil ? "not all" : "\(stepped) of \(total)") steps of '\(stream)' and rejected messages (see above)")
                }
            } else {
                note("warning: the daemon has no stream '\(stream)' after publishing: nothing arrived (\((info?["error"] as? String) ?? "no reply"))")
                if rejected > 0 { throw CLIError("the daemon rejected the steps of '\(stream)' (see above)") }
            }
        }
        let due = delta("windows_due"), trained = delta("windows_trained")
        if after["learning"] as? Bool == true, due > 0 {
            let share = Double(trained) / Double(due)
            print(String(format: "learning: %llu of %llu windows trained (%.0f%%)", trained, due, 100 * share))
            if share < 0.5 {
                note("warning: learning kept up with only \(Int(100 * share))% of the windows: the daemon skips what it cannot train in time. Publish with --rate to pace the stream if it should learn from all of it.")
            }
        }
    }

    private func note(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

    /// One message of `n` steps from `start`; `seq` nil leaves it out (JSON only).
    /// `asIDs`: token ids (the token input kind) rather than the bytes of a text.
    static func payload(_ data: RecordedStream, start: Int, count n: Int, seq: UInt64?, flags: WireFlags, json: Bool, asIDs: Bool = false) -> [UInt8] {
        precondition(json || seq != nil, "only JSON can leave out seq")
        let ts = Int64(Date().timeIntervalSince1970 * 1e9)
        let seqField = seq.map { "\"seq\":\($0)," } ?? ""
        switch data {
        case .features(let values, let width, _):
            let slice = Array(values[(start * width)..<((start + n) * width)])
            if json {
                let rows = (0..<n).map { "[" + slice[($0 * width)..<(($0 + 1) * width)].map { "\($0)" }.joined(separator: ",") + "]" }
                return Array("{\(seqField)\"ts\":\(ts),\"xs\":[\(rows.joined(separator: ","))]\(jsonFlags(flags))}".utf8)
            }
            return InputEncoder.encode(InputMessage(inputKind: .features, flags: flags, xdim: width, steps: n, seq: seq ?? 0, timestamp: ts, features: slice))
        case .tokens(let ids):
            let slice = ids[start..<(start + n)].map { UInt32($0) }
            if asIDs {
                if json { return Array("{\(seqField)\"ts\":\(ts),\"tokens\":[\(slice.map(String.init).joined(separator: ","))]\(jsonFlags(flags))}".utf8) }
                return InputEncoder.encode(InputMessage(inputKind: .token, flags: flags, xdim: 1, steps: n, seq: seq ?? 0, timestamp: ts, tokens: slice))
            }
            if json {
                // As text when the chunk is whole UTF-8 (the same input kind as the binary form);
                // a chunk that splits a character goes as token ids.
                let bytes = slice.map { UInt8(truncatingIfNeeded: $0) }
                if let text = String(validating: bytes, as: UTF8.self),
                   let quoted = try? JSONSerialization.data(withJSONObject: text, options: [.fragmentsAllowed, .withoutEscapingSlashes]) {
                    return Array("{\(seqField)\"ts\":\(ts),\"text\":".utf8) + [UInt8](quoted) + Array("\(jsonFlags(flags))}".utf8)
                }
                return Array("{\(seqField)\"ts\":\(ts),\"tokens\":[\(slice.map(String.init).joined(separator: ","))]\(jsonFlags(flags))}".utf8)
            }
            return InputEncoder.encode(InputMessage(inputKind: .text, flags: flags, xdim: 1, steps: n, seq: seq ?? 0, timestamp: ts, tokens: slice))
        }
    }

    static func jsonFlags(_ f: WireFlags) -> String {
        (f.contains(.reset) ? ",\"reset\":true" : "") + (f.contains(.end) ? ",\"end\":true" : "")
    }
}
