import ArgumentParser
import Foundation
import RecurdWire
import ZeroMQ

struct TailCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Print the daemon's predictions, one line per step: key, seq, model version, prediction, loss."
    )

    @Option(help: "The daemon's output endpoint.") var connect = "tcp://127.0.0.1:5556"
    @Option(help: "Topic prefix to subscribe to (default everything).") var prefix: String = ""
    @Option(parsing: .unconditional, help: "Stop after this many predictions (0: never).") var count: Int = 0
    @OptionGroup var curve: CurveClientOptions

    func run() throws {
        let context = try ZMQContext()
        let sub = try ZMQSocket(context: context, type: .sub)
        try sub.setReceiveHighWaterMark(1_000_000)
        try sub.subscribe(Array(prefix.utf8))
        try curve.apply(to: sub)
        let watch = try HandshakeWatch(sub, role: .consumers)
        defer { watch.stop() }
        // Waits without end for predictions, but wakes each second to see whether the daemon
        // refused this client (which would otherwise look like a quiet output).
        try sub.setReceiveTimeout(milliseconds: 1000)
        try sub.connect(connect)
        var printed = 0, received = false
        while count == 0 || printed < count {
            guard let frames = try sub.receiveFrames() else {
                if !received, let refusal = watch.certainRefusal { throw CLIError("output \(connect): \(refusal)") }
                continue
            }
            if !received {
                received = true
                watch.stop()
            }
            guard frames.count == 2 else { continue }
            let key = String(decoding: frames[0], as: UTF8.self)
            guard let m = try? OutputCodec.decode(frames[1]) else {
                print("\(key)\t(undecodable payload of \(frames[1].count) bytes)")
                continue
            }
            var out = ""
            for s in 0..<m.steps {
                let values: String
                if m.kind == .topK {
                    values = (0..<m.odim).map { "\(m.ids[s * m.odim + $0]):\(m.values[s * m.odim + $0])" }.joined(separator: ",")
                } else {
                    // Exact, as `recurd run` prints them (the shortest decimal that reads back as the same
                    // float), so that the two can be compared line by line.
                    values = (0..<m.odim).map { "\(m.values[s * m.odim + $0])" }.joined(separator: ",")
                }
                let loss = m.losses[s].isNaN ? "-" : format6(Double(m.losses[s]))
                let score = s < m.anomaly.count ? (m.anomaly[s].isNaN ? "\tanomaly=-" : "\tanomaly=\(format6(Double(m.anomaly[s])))") : ""
                out += "\(key)\t\(m.seq &+ UInt64(s))\tv\(m.modelVersion)\t\(values)\tloss=\(loss)\(score)\n"
                printed += 1
                if count > 0 && printed >= count { break }
            }
            FileHandle.standardOutput.write(Data(out.utf8))
        }
    }
}
