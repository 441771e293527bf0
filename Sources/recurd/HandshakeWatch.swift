import Foundation
import ZeroMQ

/// A client socket's failed handshakes, read when the daemon stays silent: a daemon that refused
/// this client (CURVE: a key outside the role's folder, the wrong server key, plaintext against a
/// secured daemon) is then named as the cause, instead of asking whether the daemon runs.
final class HandshakeWatch {
    /// The daemon's folder of allowed keys for the endpoint this client uses.
    enum Role: String {
        case producers, consumers, operators
    }

    private let monitor: ZMQSocket
    private let role: Role
    private let curve: Bool
    private var failure: ZMQMonitorEvent.Kind?

    /// Watches `socket`; call before it connects, so that no event is missed.
    init(_ socket: ZMQSocket, context: ZMQContext, role: Role, curve: Bool) throws {
        let endpoint = "inproc://recurd-client-\(role.rawValue)-\(UUID().uuidString)"
        try socket.monitor(endpoint, events: ZMQMonitorEvent.watched)
        monitor = try ZMQSocket(context: context, type: .pair)
        try monitor.connect(endpoint)
        self.role = role
        self.curve = curve
    }

    deinit { monitor.close() }

    /// What the daemon refused, in words for the user; nil when no handshake has failed.
    var refusal: String? {
        while let frames = try? monitor.receiveFrames(dontWait: true), let event = ZMQMonitorEvent(frames: frames) {
            if event.kind == .authFailed || event.kind == .handshakeFailed { failure = event.kind }
        }
        switch (failure, curve) {
        case (nil, _):
            return nil
        case (_, false):
            return "the daemon refused the connection's handshake: it has CURVE on, so pass --curve-cert and --server-key"
        case (.authFailed, true):
            return "the daemon refused this client's key: its public certificate (NAME.key) must be in the daemon's "
                + "\(role.rawValue)/ folder of --curve-clients (a key added later needs a SIGHUP)"
        case (_, true):
            return "the CURVE handshake with the daemon failed: is --server-key the daemon's public key, and does the daemon have CURVE on?"
        }
    }
}
