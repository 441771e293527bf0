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

    /// The raw reply, or nil when none came within the timeout.
    func raw(_ command: String) throws -> [UInt8]? {
        // A REQ socket that timed out cannot send again, so each request gets its own.
        let socket = try ZMQSocket(context: context, type: .req)
        defer { socket.close() }
        try socket.setLinger(milliseconds: 0)
        try socket.setReceiveTimeout(milliseconds: Int32(max(1, timeout * 1000)))
        try curve?.apply(to: socket)
        try socket.connect(endpoint)
        _ = try socket.send(frames: [Array(command.utf8)])
        return try socket.receiveFrames()?.first
    }

    /// The reply as a JSON object, or nil when there was none (or it was not an object).
    func request(_ command: String) -> [String: Any]? {
        guard let reply = try? raw(command) else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(reply))) as? [String: Any]
    }
}
