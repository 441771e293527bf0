import Foundation
import ZeroMQ

/// One request to a daemon's control endpoint (REQ), its JSON reply decoded: what `ctl` and
/// `publish` use to read the daemon's view.
struct ControlClient {
    let endpoint: String
    let timeout: Double
    private let context: ZMQContext
    private let curve: CurveClientOptions?

    init(endpoint: String, timeout: Double, context: ZMQContext, curve: CurveClientOptions? = nil) {
        self.endpoint = endpoint
        self.timeout = timeout
        self.context = context
        self.curve = curve
    }

    /// The raw reply, or nil when none came within the timeout; throws when the daemon refused
    /// this client's handshake (CURVE), saying why.
    func raw(_ command: String) throws -> [UInt8]? {
        // A REQ socket that timed out cannot send again, so each request gets its own.
        let socket = try ZMQSocket(context: context, type: .req)
        defer { socket.close() }
        try socket.setLinger(milliseconds: 0)
        try socket.setReceiveTimeout(milliseconds: Int32(max(1, timeout * 1000)))
        try curve?.apply(to: socket)
        let watch = try HandshakeWatch(socket, role: .operators)
        defer { watch.stop() }
        try socket.connect(endpoint)
        _ = try socket.send(frames: [Array(command.utf8)])
        if let reply = try socket.receiveFrames()?.first { return reply }
        if let refusal = watch.refusal(hint: "is this the daemon's control endpoint?") { throw CLIError("control \(endpoint): \(refusal)") }
        return nil
    }

    /// The reply as a JSON object; nil when there was none within the timeout (or it was not an
    /// object); throws when the daemon refused this client.
    func object(_ command: String) throws -> [String: Any]? {
        guard let reply = try raw(command) else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(reply))) as? [String: Any]
    }

    /// `object`, with a refusal read as no reply.
    func request(_ command: String) -> [String: Any]? { (try? object(command)) ?? nil }

    /// `request` of a command about one stream, sent as JSON so that the key reaches the daemon
    /// exactly (a text request's ends are trimmed: "sensor-1 " would ask about "sensor-1").
    func request(_ command: String, key: String) -> [String: Any]? {
        guard let json = try? JSONSerialization.data(withJSONObject: ["command": command, "key": key], options: [.sortedKeys]) else { return nil }
        return request(String(decoding: json, as: UTF8.self))
    }
}
