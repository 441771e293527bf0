import Foundation
import RecurdWire
import ZeroMQ

/// The real `recurd serve` binary, started as a process on ipc endpoints in a temporary
/// directory (and a free loopback HTTP port), with client sockets to talk to it.
public final class DaemonHarness {
    /// Chunks of answers not yet whole, by stream key (`receive(count:)`).
    private var partial: [String: OutputMessage] = [:]
    public let directory: URL
    public let process = Process()
    public let logFile: URL
    public let inputEndpoint: String
    public let outputEndpoint: String
    public let controlEndpoint: String
    public let httpPort: Int
    public let context: ZMQContext
    /// Sends to the daemon's input (PUSH to its PULL, or PUB to its SUB).
    public let input: ZMQSocket
    /// Receives every prediction.
    public let output: ZMQSocket
    private var probeSeq: UInt64 = 0
    /// Probes go to a stream of this harness's own (a daemon restarted on the same state keeps
    /// earlier probe streams, with their own numbering).
    private let probeKey = "__probe__\(UInt32.random(in: 0...UInt32.max))"

    /// Starts `recurd serve` with `arguments` added to the endpoint flags.
    /// Probe messages must fit the model: `probeWidth` features, or a text byte when `probeText`.
    let probeWidth: Int
    let probeText: Bool

    /// `launcher`: a command that runs the daemon (its arguments follow), e.g. `unshare …`.
    /// With CURVE on in the daemon, the harness's own sockets (input, output, control) use
    /// `curve`: this client's key pair and the server's public key (32 bytes each).
    public struct CurveKeys: Sendable {
        public let publicKey: [UInt8], secretKey: [UInt8], serverKey: [UInt8]
        public init(publicKey: [UInt8], secretKey: [UInt8], serverKey: [UInt8]) {
            self.publicKey = publicKey
            self.secretKey = secretKey
            self.serverKey = serverKey
        }
    }
    let curve: CurveKeys?

    public init(arguments: [String], inputSocket: String = "pull", http: Bool = true, probeWidth: Int = 3, probeText: Bool = false,
                environment: [String: String] = [:], launcher: [String] = [], curve: CurveKeys? = nil) throws {
        self.curve = curve
        self.probeWidth = probeWidth
        self.probeText = probeText
        directory = temporaryDirectory()
        logFile = directory.appendingPathComponent("daemon.log")
        inputEndpoint = "ipc://\(directory.path)/in"
        outputEndpoint = "ipc://\(directory.path)/out"
        controlEndpoint = "ipc://\(directory.path)/control"
        httpPort = http ? freeTCPPort() : 0
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let serve = ["serve", "--input", inputEndpoint, "--input-socket", inputSocket, "--output", outputEndpoint,
                     "--control", controlEndpoint, "--http", http ? "127.0.0.1:\(httpPort)" : ""] + arguments
        if launcher.isEmpty {
            process.executableURL = recurdBinary
            process.arguments = serve
        } else {
            process.executableURL = URL(fileURLWithPath: launcher[0])
            process.arguments = Array(launcher.dropFirst()) + [recurdBinary.path] + serve
        }
        // Not the test runner's systemd variables (a CI job run as a service has some): a daemon
        // would notify, or be socket-activated by, the runner's manager. Tests that want them pass them.
        var base = ProcessInfo.processInfo.environment
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "JOURNAL_STREAM"] { base[name] = nil }
        process.environment = base.merging(environment) { $1 }
        let log = try FileHandle(forWritingTo: logFile)
        process.standardError = log
        process.standardOutput = log
        try process.run()
        context = try ZMQContext()
        input = try ZMQSocket(context: context, type: inputSocket == "pull" ? .push : .pub)
        try input.setSendHighWaterMark(1_000_000)
        if let curve { try input.setCurveClient(serverKey: curve.serverKey, publicKey: curve.publicKey, secretKey: curve.secretKey) }
        try input.connect(inputEndpoint)
        output = try ZMQSocket(context: context, type: .sub)
        try output.setReceiveHighWaterMark(1_000_000)
        try output.subscribe([])
        if let curve { try output.setCurveClient(serverKey: curve.serverKey, publicKey: curve.publicKey, secretKey: curve.secretKey) }
        try output.connect(outputEndpoint)
        try waitForLog("serving", timeout: 20)
        if http { try waitForLog("http", timeout: 10) }
        try waitForSubscription()
    }

    deinit {
        if process.isRunning { _ = terminate() }
        input.close()
        output.close()
        try? FileManager.default.removeItem(at: directory)
    }

    public var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    func waitForLog(_ needle: String, timeout: Double) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if log.contains(needle) { return }
            if !process.isRunning { throw HarnessError("daemon exited with status \(process.terminationStatus): \(log)") }
            usleep(20_000)
        }
        throw HarnessError("timed out waiting for '\(needle)' in the daemon's log: \(log)")
    }

    /// Publishes probes on a stream of their own until one's prediction comes back, so that the
    /// output subscription is known to be live (and any daemon-created model exists).
    func waitForSubscription() throws {
        try output.setReceiveTimeout(milliseconds: 100)
        // Up to 30 s: a daemon creating its model on a loaded machine may take a while.
        for _ in 0..<300 {
            // NO_LEARN: probes must not move the weights of a learning daemon.
            let probe = probeText
                ? InputMessage(inputKind: .text, flags: [.noLearn], xdim: 1, steps: 1, seq: probeSeq, tokens: [32])
                : InputMessage(inputKind: .features, flags: [.noLearn], xdim: probeWidth, steps: 1, seq: probeSeq, features: Array(repeating: 0, count: probeWidth))
            try send(key: probeKey, probe)
            probeSeq += 1
            if let frames = try output.receiveFrames(), let key = frames.first, String(decoding: key, as: UTF8.self).hasSuffix(probeKey) {
                // Drain any other probe replies.
                while try output.receiveFrames() != nil {}
                try output.setReceiveTimeout(milliseconds: 10_000)
                return
            }
        }
        throw HarnessError("no prediction for the probe stream: \(log)")
    }

    public func send(key: String, _ message: InputMessage) throws {
        try send(frames: [Array(key.utf8), InputEncoder.encode(message)])
    }

    public func send(frames: [[UInt8]]) throws {
        guard try input.send(frames: frames) else { throw HarnessError("send would block") }
    }

    /// The next output message (key, payload), or nil after the receive timeout.
    public func receive() throws -> (key: String, message: OutputMessage)? {
        guard let frames = try output.receiveFrames() else { return nil }
        guard frames.count == 2 else { throw HarnessError("output with \(frames.count) frames") }
        return (String(decoding: frames[0], as: UTF8.self), try OutputCodec.decode(frames[1]))
    }

    /// Receives until the outputs of `count` input messages (probes excluded) arrived. A message
    /// answered in chunks (longer than a cycle's 64 rounds, or a cycle ran out of its 2 ms
    /// mid-message, as on a loaded machine) counts once, its chunks joined in order, so tests see
    /// one output per input whatever the timing. Chunks of answers not yet whole wait for the next
    /// call; a partial answer that the stream's next output does not continue is dropped.
    public func receive(count: Int) throws -> [(key: String, message: OutputMessage)] {
        var got: [(key: String, message: OutputMessage)] = []
        while got.count < count {
            guard let m = try receive() else { throw HarnessError("timed out after \(got.count) of \(count) outputs: \(log)") }
            if m.key.contains("__probe__") { continue }
            let joined = partial.removeValue(forKey: m.key).flatMap { $0.joined(with: m.message) } ?? m.message
            if joined.flags.contains(.more) { partial[m.key] = joined } else { got.append((m.key, joined)) }
        }
        return got
    }

    /// Sends a control command and returns the parsed JSON reply.
    public func control(_ command: String) throws -> [String: Any] {
        let req = try ZMQSocket(context: context, type: .req)
        defer { req.close() }
        try req.setLinger(milliseconds: 0)
        try req.setReceiveTimeout(milliseconds: 10_000)
        if let curve { try req.setCurveClient(serverKey: curve.serverKey, publicKey: curve.publicKey, secretKey: curve.secretKey) }
        try req.connect(controlEndpoint)
        try req.send(frames: [Array(command.utf8)])
        guard let reply = try req.receiveFrames()?.first else { throw HarnessError("no control reply to '\(command)'") }
        guard let o = try JSONSerialization.jsonObject(with: Data(reply)) as? [String: Any] else { throw HarnessError("control reply is not an object") }
        return o
    }

    /// GET `path` from the HTTP port; returns (status, body).
    public func http(_ path: String) throws -> (Int, String) {
        try httpGet(port: httpPort, path: path)
    }

    /// Sends SIGTERM and waits (60 s, then SIGKILL: a daemon stuck at its stop fails its test
    /// instead of holding the whole run); returns the exit status.
    public func terminate() -> Int32 {
        process.terminate()
        if waitForExit(timeout: 60) == nil {
            FileHandle.standardError.write(Data("daemon \(pid) did not stop within 60 s of SIGTERM; killed\n".utf8))
            signal(SIGKILL)
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// The daemon's process id.
    public var pid: Int32 { process.processIdentifier }

    /// Sends `signal` (e.g. SIGKILL, SIGHUP).
    public func signal(_ signal: Int32) { Foundation.kill(process.processIdentifier, signal) }

    /// Waits for the process to end; its exit status (or signal), or nil after `timeout` seconds.
    public func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Sends `message` on `key` and returns its (first) output: for lock-step runs whose cycles
    /// hold one message each, so that results do not depend on timing.
    public func step(key: String, _ message: InputMessage) throws -> OutputMessage {
        try send(key: key, message)
        while true {
            guard let m = try receive() else { throw HarnessError("no output for \(key) within the timeout: \(log)") }
            // Outputs of earlier messages of the same stream may still be queued: match the seq too.
            if m.key == key && (message.seq == nil || m.message.seq == message.seq || message.flags.contains(.reset)) { return m.message }
        }
    }
}

public struct HarnessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// A loopback TCP port free at the time of asking.
public func freeTCPPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A minimal HTTP/1.1 GET over a POSIX socket.
public func httpGet(port: Int, path: String) throws -> (Int, String) {
    try httpRequest(port: port, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
}

/// Sends `request` as it is and reads until the server closes (at most `timeout` seconds):
/// the status (0 when none came) and the body.
public func httpRequest(port: Int, _ request: String, timeout: Int = 30) throws -> (Int, String) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    let rc = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard rc == 0 else { throw HarnessError("connect to 127.0.0.1:\(port) failed") }
    var limit = timeval(tv_sec: timeout, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    _ = request.withCString { write(fd, $0, strlen($0)) }
    var data = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n <= 0 { break }
        data += buffer[0..<n]
    }
    let text = String(decoding: data, as: UTF8.self)
    let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
    let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
    return (status, body)
}
