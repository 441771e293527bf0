import ArgumentParser
import Foundation
import RecurdData
import RecurdWire
import ZeroMQ

struct PublishCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "publish", abstract: "Publish a recorded CSV or text file as one stream.")

    @Option(help: "Endpoint of the daemon's input.") var connect = "tcp://127.0.0.1:5555"
    @Option(help: "Stream key.") var stream: String
    @Option(help: "csv or text (default: from the file name; .csv is CSV).") var format: StreamFormat?
    @Option(help: "0-based CSV columns to send as features.") var columns: String?
    @Option(help: "Steps per second (0: as fast as possible).") var rate: Double = 0
    @Option(name: .customLong("steps-per-message"), help: "Steps in each message.") var stepsPerMessage: Int = 1
    @Option(help: "pub (to a SUB input, the default) or push (to a PULL input).") var socket: String = "pub"
    @Option(help: "Seq of the first step.") var seq: UInt64 = 0
    @Flag(help: "Set RESET on the first message.") var reset = false
    @Flag(help: "Set END on the last message.") var end = false
    @Flag(help: "Send JSON payloads instead of binary.") var json = false
    @Argument(help: "The file to publish.") var file: String

    func validate() throws {
        if stepsPerMessage < 1 { throw ValidationError("--steps-per-message must be at least 1") }
        if !["pub", "push"].contains(socket) { throw ValidationError("--socket is pub or push") }
        if stream.utf8.isEmpty || stream.utf8.count > 255 { throw ValidationError("--stream must be 1–255 bytes") }
    }

    func run() throws {
        let bytes = try FileIO.read(file, what: "input")
        let chosen = format ?? (file.lowercased().hasSuffix(".csv") ? .csv : .text)
        let data: RecordedStream
        switch chosen {
        case .csv:
            do { data = try CSVReader.read(bytes, columns: try columns.map { try parseColumns($0) }) } catch let e as RecordedStreamError { throw CLIError("\(file): \(e)") }
        case .text:
            data = TextReader.read(bytes)
        }
        let context = try ZMQContext()
        let s = try ZMQSocket(context: context, type: socket == "pub" ? .pub : .push)
        try s.setSendHighWaterMark(1_000_000)
        try s.setLinger(milliseconds: 10_000)
        try s.connect(connect)
        // A PUB socket drops what it sends before the subscriber's subscription arrives.
        if socket == "pub" { Thread.sleep(forTimeInterval: 0.5) }
        let key = Array(stream.utf8)
        let total = data.count
        let started = Date()
        var sent = 0
        var start = 0
        while start < total {
            let n = min(stepsPerMessage, total - start)
            var flags: WireFlags = []
            if reset && start == 0 { flags.insert(.reset) }
            if end && start + n == total { flags.insert(.end) }
            let payload = Self.payload(data, start: start, count: n, seq: seq + UInt64(start), flags: flags, json: json)
            try s.send(frames: [key, payload])
            sent += 1
            start += n
            if rate > 0 {
                let due = started.addingTimeInterval(Double(start) / rate)
                let wait = due.timeIntervalSinceNow
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
            }
        }
        s.close()
        print("published \(total) steps of '\(stream)' in \(sent) messages to \(connect)")
    }

    static func payload(_ data: RecordedStream, start: Int, count n: Int, seq: UInt64, flags: WireFlags, json: Bool) -> [UInt8] {
        let ts = Int64(Date().timeIntervalSince1970 * 1e9)
        switch data {
        case .features(let values, let width, _):
            let slice = Array(values[(start * width)..<((start + n) * width)])
            if json {
                let rows = (0..<n).map { "[" + slice[($0 * width)..<(($0 + 1) * width)].map { "\($0)" }.joined(separator: ",") + "]" }
                return Array("{\"seq\":\(seq),\"ts\":\(ts),\"xs\":[\(rows.joined(separator: ","))]\(jsonFlags(flags))}".utf8)
            }
            return InputEncoder.encode(InputMessage(inputKind: .features, flags: flags, xdim: width, steps: n, seq: seq, timestamp: ts, features: slice))
        case .tokens(let ids):
            let slice = ids[start..<(start + n)].map { UInt32($0) }
            if json {
                return Array("{\"seq\":\(seq),\"ts\":\(ts),\"tokens\":[\(slice.map(String.init).joined(separator: ","))]\(jsonFlags(flags))}".utf8)
            }
            return InputEncoder.encode(InputMessage(inputKind: .text, flags: flags, xdim: 1, steps: n, seq: seq, timestamp: ts, tokens: slice))
        }
    }

    static func jsonFlags(_ f: WireFlags) -> String {
        (f.contains(.reset) ? ",\"reset\":true" : "") + (f.contains(.end) ? ",\"end\":true" : "")
    }
}
