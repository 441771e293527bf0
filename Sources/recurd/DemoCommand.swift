import ArgumentParser
import Foundation
import RecurdData
import RecurdDaemon
import RecurdWire
import ZeroMQ

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start the daemon in-process, stream a bundled real series through it, show live predictions and the progressive loss."
    )

    @Option(help: "CSV to stream (default: the bundled NAB machine temperature series).") var data: String?
    @Option(parsing: .unconditional, help: "Print a line every this many steps.") var every: Int = 1_000

    func validate() throws {
        if every < 1 { throw ValidationError("--every must be at least 1") }
    }
    @Option(parsing: .unconditional, help: "Steps per second (0: each step as soon as the previous prediction is back).") var rate: Double = 0
    @Option(parsing: .unconditional, help: "Stop after this many steps (0: the whole series).") var steps: Int = 0
    @Flag(inversion: .prefixedNo, help: "Learn online while serving (default on).") var learn = true
    @Flag(name: .customLong("anomaly-scores"), inversion: .prefixedNo, help: "Score every step and mark the steps at or above the alert level (default on).")
    var anomalyScores = true

    static let defaultData = "Data/nab/machine_temperature_system_failure.csv"

    /// The bundled series: from the working directory, or relative to the executable
    /// (`.build/release/recurd` → the repository root).
    func dataPath() throws -> String {
        if let data { return data }
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var candidates = [Self.defaultData]
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(dir.appendingPathComponent(Self.defaultData).path)
            dir = dir.deletingLastPathComponent()
        }
        guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw CLIError("cannot find the bundled data (\(Self.defaultData)); run from the repository or give --data")
        }
        return found
    }

    func run() async throws {
        let path = try dataPath()
        let stream: RecordedStream
        do { stream = try CSVReader.read(FileIO.read(path, what: "data")) } catch let e as RecordedStreamError { throw CLIError("\(path): \(e)") }
        guard case .features(let values, let width, let names) = stream, width == 1 else { throw CLIError("\(path): the demo streams one numeric column") }
        let total = steps > 0 ? min(steps, stream.count) : stream.count

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("recurd-demo-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var config = ServeConfiguration()
        config.inputBind = ["ipc://\(dir.path)/in"]
        config.inputSocket = .pull
        config.output = "ipc://\(dir.path)/out"
        config.control = "ipc://\(dir.path)/control"
        config.http = ""
        config.learn = learn
        config.anomalyScores = anomalyScores
        config.logLevel = .error
        let daemon = try Daemon(configuration: config, logControl: LogControl(level: .error))
        let serving = Task { try await daemon.run(handleSignals: false) }
        let ready = try await daemon.waitUntilReady()

        let timestamps = Self.timestamps(path)
        let windows = Self.labelledWindows(near: path)
        print("recurd demo — \(URL(fileURLWithPath: path).lastPathComponent) (\(names[0]), \(total) steps), NAB, MIT licence")
        print("daemon: LSTM 64 with a residual head created from the first step, next-step targets, learning \(learn ? "on" : "off");")
        print("the published forecast combines the network's with simple forecasters online (--combine)\(anomalyScores ? "; anomaly scores on" : "")")
        print("each line: step, time, actual value, the value forecast for it one step earlier, and the progressive loss the daemon")
        print("reports (MSE in standard deviations², running and over the last \(every) steps)\(anomalyScores ? "; ⚑ marks a step scored ≥ \(config.anomalyAlertLevel)" : "")\n")
        print(["step".leftPad(8), "time".leftPad(19), "actual".leftPad(10), "forecast".leftPad(10), "running loss".leftPad(14), "last-\(every) loss".leftPad(14)].joined(separator: "  "))

        let alertLevel = config.anomalyAlertLevel
        let summary = try await withCheckedThrowingContinuation { (done: CheckedContinuation<DemoSummary, any Error>) in
            let thread = Thread {
                do {
                    done.resume(returning: try streamSeries(values, count: total, ready: ready, timestamps: timestamps, alertLevel: alertLevel))
                } catch { done.resume(throwing: error) }
            }
            thread.start()
        }
        daemon.stop()
        _ = try? await serving.value

        print("")
        print(String(format: "steps %d in %.2f s (%.0f steps/s, one message per step, each waiting for its prediction)", total, summary.seconds, Double(total) / summary.seconds))
        print(String(format: "progressive loss (std²): all %.4f · first 1000 %.4f · last 1000 %.4f", summary.meanLoss, summary.firstLoss, summary.lastLoss))
        print(String(format: "squared error in the stream's units: recurd %.3f vs persistence (next = last) %.3f (%.2f×) · last half %.3f vs %.3f (%.2f×)",
                     summary.userMSE, summary.persistence, summary.userMSE / summary.persistence, summary.userMSELastHalf,
                     summary.persistenceLastHalf, summary.userMSELastHalf / summary.persistenceLastHalf))
        if anomalyScores {
            let flagged = summary.flagged.compactMap { $0 < timestamps.count ? timestamps[$0] : nil }
            if windows.isEmpty {
                print("anomaly scores: \(summary.flagged.count) steps flagged")
            } else {
                // NAB's labelled windows: where the known failure and its precursors are.
                let hit = windows.filter { w in flagged.contains { $0 >= w.start && $0 <= w.end } }.count
                let outside = flagged.filter { t in !windows.contains { t >= $0.start && t <= $0.end } }.count
                print("anomaly scores: \(summary.flagged.count) steps flagged; NAB's \(windows.count) labelled anomaly windows for this series: " +
                      "\(hit) flagged, \(outside) flag\(outside == 1 ? "" : "s") outside them")
                for w in windows {
                    let inside = flagged.filter { $0 >= w.start && $0 <= w.end }
                    print("  window \(w.start) … \(w.end): " + (inside.isEmpty ? "not flagged" : "first flag at \(inside[0])"))
                }
            }
        }
    }

    /// The first CSV column of each data row when the header names it `timestamp` (NAB files).
    static func timestamps(_ path: String) -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        let lines = text.split(whereSeparator: \.isNewline)
        guard let header = lines.first, header.hasPrefix("timestamp") else { return [] }
        return lines.dropFirst().map { String($0.prefix { $0 != "," }) }
    }

    /// NAB's labelled anomaly windows for the file, from `windows.json` beside it (if there).
    static func labelledWindows(near path: String) -> [(start: String, end: String)] {
        let url = URL(fileURLWithPath: path)
        let file = url.deletingLastPathComponent().appendingPathComponent("windows.json")
        guard let data = try? Data(contentsOf: file),
              let all = (try? JSONSerialization.jsonObject(with: data)) as? [String: [[String]]] else { return [] }
        let name = url.lastPathComponent
        guard let spans = all.first(where: { $0.key.hasSuffix("/" + name) })?.value else { return [] }
        return spans.compactMap { $0.count == 2 ? (String($0[0].prefix(19)), String($0[1].prefix(19))) : nil }
    }

    struct DemoSummary {
        var seconds: Double
        var meanLoss: Double
        var firstLoss: Double
        var lastLoss: Double
        var persistence: Double
        var userMSE: Double
        var userMSELastHalf: Double
        var persistenceLastHalf: Double
        /// Steps scored at or above the alert level.
        var flagged: [Int]
    }

    /// Sends each step and waits for its prediction (blocking ZeroMQ, on its own thread).
    func streamSeries(_ values: [Float], count total: Int, ready: ReadyInfo, timestamps: [String], alertLevel: Float) throws -> DemoSummary {
        let context = try ZMQContext()
        let push = try ZMQSocket(context: context, type: .push)
        try push.connect(ready.inputs[0])
        let sub = try ZMQSocket(context: context, type: .sub)
        try sub.subscribe([])
        try sub.setReceiveTimeout(milliseconds: 10_000)
        try sub.connect(ready.output)
        Thread.sleep(forTimeInterval: 0.3)   // let the subscription reach the daemon
        let key = Array("machine-temperature".utf8)
        var losses: [Double] = []
        var windowSum = 0.0, windowCount = 0
        var previousPrediction: Float = .nan
        var userErrors: [Double] = []
        var persistenceErrors: [Double] = []
        var flagged: [Int] = []
        func time(_ t: Int) -> String { t < timestamps.count ? timestamps[t] : "" }
        let started = Date()
        for t in 0..<total {
            let message = InputMessage(inputKind: .features, xdim: 1, steps: 1, seq: UInt64(t), features: [values[t]])
            try push.send(frames: [key, InputEncoder.encode(message)])
            guard let frames = try sub.receiveFrames(), frames.count == 2 else { throw CLIError("no prediction for step \(t) within 10 s") }
            let out = try OutputCodec.decode(frames[1])
            if let loss = out.losses.first, !loss.isNaN {
                losses.append(Double(loss))
                windowSum += Double(loss)
                windowCount += 1
            }
            if t > 0 {
                let e = Double(values[t] - previousPrediction), p = Double(values[t] - values[t - 1])
                userErrors.append(e * e)
                persistenceErrors.append(p * p)
            }
            if let score = out.anomaly.first, score >= alertLevel {
                flagged.append(t)
                print(String(format: "%8d  %@  %10.3f  %10.3f  ⚑ anomaly score %.2f", t, time(t).leftPad(19), values[t], previousPrediction, score))
            }
            if t > 0 && t % every == 0 {
                let running = losses.reduce(0, +) / Double(max(losses.count, 1))
                print(String(format: "%8d  %@  %10.3f  %10.3f  %14.4f  %14.4f", t, time(t).leftPad(19), values[t], previousPrediction, running,
                             windowSum / Double(max(windowCount, 1))))
                windowSum = 0
                windowCount = 0
            }
            previousPrediction = out.values.first ?? .nan
            if rate > 0 {
                let wait = started.addingTimeInterval(Double(t + 1) / rate).timeIntervalSinceNow
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
            }
        }
        let seconds = Date().timeIntervalSince(started)
        func mean(_ s: ArraySlice<Double>) -> Double { s.isEmpty ? .nan : s.reduce(0, +) / Double(s.count) }
        let half = userErrors.count / 2
        return DemoSummary(seconds: seconds, meanLoss: mean(losses[...]), firstLoss: mean(losses.prefix(1000)), lastLoss: mean(losses.suffix(1000)),
                           persistence: mean(persistenceErrors[...]), userMSE: mean(userErrors[...]),
                           userMSELastHalf: mean(userErrors[half...]), persistenceLastHalf: mean(persistenceErrors[half...]), flagged: flagged)
    }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
