import Foundation
import ZeroMQ

/// A client socket's failed handshakes, read when the daemon stays silent: a daemon that refused
/// this client (CURVE: a key outside the role's folder, CURVE on one side only, a wrong server
/// key) is then named as the cause, instead of asking whether the daemon runs.
///
/// libzmq sends monitor events blocking, so the watch must be `stop`ped (or read) while the
/// socket lives on: callers stop it as soon as the connection is known to work or they give up.
final class HandshakeWatch {
    /// The daemon's folder of allowed keys for the endpoint this client uses.
    enum Role: String {
        case producers, consumers, operators
    }

    private let socket: ZMQSocket
    private let monitor: ZMQSocket
    private let role: Role
    /// The last handshake's failure; nil before any, and again after one succeeds.
    private var failure: ZMQMonitorEvent?
    private var stopped = false

    /// Watches `socket`; call after its CURVE keys (if any) are set and before it connects, so
    /// that no event is missed.
    init(_ socket: ZMQSocket, role: Role) throws {
        monitor = try socket.monitorReader("inproc://recurd-client-\(role.rawValue)-\(UUID().uuidString)")
        self.socket = socket
        self.role = role
    }

    deinit { stop() }

    /// Stops the socket's monitor, then closes its reader (in that order, see above).
    func stop() {
        guard !stopped else { return }
        stopped = true
        try? socket.stopMonitor()
        monitor.close()
    }

    /// The refusal when it is certain (a refused key, CURVE on one side only), for a client that
    /// would otherwise wait on: a lost connection may be a daemon restarting.
    var certainRefusal: String? {
        read()
        guard let failure, Self.isCertain(failure) else { return nil }
        return describe(failure, hint: "")
    }

    /// What made the handshake fail, in words for the user; nil when none failed. `hint` is the
    /// caller's own guess (a wrong endpoint or socket type), used where libzmq cannot tell the
    /// causes apart: the daemon may close a connection before the client has read why, so a
    /// plaintext client meets a CURVE daemon as a lost connection now and then, as does a socket
    /// type that does not fit the endpoint, or a wrong server key.
    func refusal(hint: String) -> String? {
        read()
        return failure.map { describe($0, hint: hint) }
    }

    /// A refused key, or CURVE on one side only.
    private static func isCertain(_ e: ZMQMonitorEvent) -> Bool { e.kind == .authFailed || e.value == ZMQMonitorEvent.mechanismMismatch }

    private func read() {
        while !stopped, let event = monitor.nextMonitorEvent() {
            switch event.kind {
            case .authFailed, .handshakeFailed:
                // A certain cause is kept over a later attempt that failed without one.
                if Self.isCertain(event) || !(failure.map(Self.isCertain) ?? false) { failure = event }
            case .handshakeSucceeded:
                failure = nil
            default:
                break
            }
        }
    }

    private func describe(_ failure: ZMQMonitorEvent, hint: String) -> String {
        switch (failure.kind, failure.value == ZMQMonitorEvent.mechanismMismatch, socket.usesCurve) {
        case (.authFailed, _, _):
            return "the daemon refused this client's key: its public certificate (NAME.key) must be in the daemon's "
                + "\(role.rawValue)/ folder of --curve-clients (a key added later needs a SIGHUP)"
        case (_, true, false):
            return "the daemon refused the connection's handshake: it has CURVE on, so pass --curve-cert and --server-key"
        case (_, true, true):
            return "the daemon does not have CURVE on: leave out --curve-cert and --server-key"
        case (_, false, true):
            return "the CURVE handshake failed: is --server-key the daemon's public key? — or: \(hint)"
        case (_, false, false):
            return "the handshake failed: \(hint) — or the daemon has CURVE on, and this client needs --curve-cert and --server-key"
        }
    }
}
