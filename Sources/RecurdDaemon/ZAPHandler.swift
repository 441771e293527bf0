import Foundation
import Logging
import Synchronization
import ZeroMQ

/// The daemon's ZeroMQ authentication handler (ZAP, RFC 27), on its own thread: every CURVE
/// connection to the input, output or control is checked against the role's allow-list
/// (`CurveRoles`). Allowed connections get the client's key as their User-Id, which every
/// message on them then carries; a denied one gets nothing in or out, costs a counter
/// (`recurd_auth_denied_total{endpoint}`) and a log line (rate-limited) naming the key.
final class ZAPHandler: Sendable {
    static let endpoint = "inproc://zeromq.zap.01"

    private let roles: Mutex<CurveRoles>
    private let deniedInput = Atomic<Int>(0), deniedOutput = Atomic<Int>(0), deniedControl = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)
    private let socket: ZMQSocketHandoff
    private let logger: Logger
    private let metrics: DaemonMetrics

    /// Binds the handler's socket (before any CURVE socket binds: libzmq lets connections through
    /// unchecked while no handler is there) and starts its thread.
    init(context: ZMQContext, roles: CurveRoles, logger: Logger, metrics: DaemonMetrics) throws(ZMQError) {
        let s = try ZMQSocket(context: context, type: .rep)
        try s.setLinger(milliseconds: 0)
        try s.setReceiveTimeout(milliseconds: 100)
        try s.bind(Self.endpoint)
        socket = ZMQSocketHandoff(s)
        self.roles = Mutex(roles)
        self.logger = logger
        self.metrics = metrics
        let thread = Thread { [self] in run() }
        thread.name = "recurd-zap"
        thread.start()
    }

    /// Takes new allow-lists (SIGHUP): connections from then on are checked against them.
    func update(_ new: CurveRoles) { roles.withLock { $0 = new } }

    var current: CurveRoles { roles.withLock { $0 } }

    /// Denials so far on `domain`, the handler's and those counted with `countDenied`.
    func deniedCount(_ domain: CurveRoles.Domain) -> Int {
        switch domain {
        case .input: deniedInput.load(ordering: .relaxed)
        case .output: deniedOutput.load(ordering: .relaxed)
        case .control: deniedControl.load(ordering: .relaxed)
        }
    }

    /// Counts a denial found elsewhere (a plaintext client's failed handshake, a revoked key's
    /// message).
    func countDenied(_ domain: CurveRoles.Domain) {
        switch domain {
        case .input: deniedInput.add(1, ordering: .relaxed)
        case .output: deniedOutput.add(1, ordering: .relaxed)
        case .control: deniedControl.add(1, ordering: .relaxed)
        }
        metrics.authDenied(domain)
    }

    /// Stops the thread and closes its socket (before the context terminates).
    func stop() {
        stopping.store(true, ordering: .relaxed)
        while !finished.load(ordering: .acquiring) { usleep(1_000) }
    }

    private func run() {
        let s = socket.socket
        // This thread's own: a line a second per endpoint, whatever the key (anyone with the
        // server's public key can make a new key pair per handshake), with the count suppressed.
        let refusals = RateLimitedLog(logger: logger)
        while !stopping.load(ordering: .relaxed) {
            guard let frames = try? s.receiveFrames() else { continue }
            guard frames.count >= 6 else {
                // Only libzmq sends here, and always six frames or more; still, a REP socket that
                // does not answer a request can take no other, which would stall every handshake.
                let requestId = frames.count >= 2 ? frames[1] : []
                _ = try? s.send(frames: [Array("1.0".utf8), requestId, Array("500".utf8), Array("malformed ZAP request".utf8), [], []])
                continue
            }
            // version, request id, domain, address, routing id, mechanism, credentials…
            let requestId = frames[1]
            let domainName = String(decoding: frames[2], as: UTF8.self)
            let address = String(decoding: frames[3], as: UTF8.self)
            let mechanism = String(decoding: frames[5], as: UTF8.self)
            var userId: String?
            var reason = "not a CURVE connection"
            if let domain = CurveRoles.Domain(rawValue: domainName), mechanism == "CURVE", frames.count >= 7 {
                let text = frames[6].withUnsafeBytes { ZMQCurve.encode($0) }
                if let text, let key = CurveKey(z85: text) {
                    if roles.withLock({ $0.allowed(domain).contains(key) }) {
                        userId = text
                    } else {
                        reason = "key \(text) is not in \(Self.folder(domain))/"
                    }
                }
                if userId == nil {
                    countDenied(domain)
                    refusals.warning(domain.rawValue, now: Clock.seconds, "connection refused",
                                     metadata: ["endpoint": "\(domainName)", "reason": "\(reason)", "peer": "\(address)"])
                }
            }
            let ok = userId != nil
            _ = try? s.send(frames: [Array("1.0".utf8), requestId, Array((ok ? "200" : "400").utf8), Array((ok ? "OK" : reason).utf8),
                                     Array((userId ?? "").utf8), []])
        }
        s.close()
        finished.store(true, ordering: .releasing)
    }

    static func folder(_ d: CurveRoles.Domain) -> String {
        switch d {
        case .input: "producers"
        case .output: "consumers"
        case .control: "operators"
        }
    }
}
