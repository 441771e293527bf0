import CZeroMQ

/// The socket types recurd uses.
public enum ZMQSocketType: Sendable, CustomStringConvertible {
    case pub, sub, push, pull, rep, req, xpub, pair

    var raw: Int32 {
        switch self {
        case .xpub: ZMQ_XPUB
        case .pair: ZMQ_PAIR
        case .pub: ZMQ_PUB
        case .sub: ZMQ_SUB
        case .push: ZMQ_PUSH
        case .pull: ZMQ_PULL
        case .rep: ZMQ_REP
        case .req: ZMQ_REQ
        }
    }

    public var description: String {
        switch self {
        case .xpub: "XPUB"
        case .pair: "PAIR"
        case .pub: "PUB"
        case .sub: "SUB"
        case .push: "PUSH"
        case .pull: "PULL"
        case .rep: "REP"
        case .req: "REQ"
        }
    }
}

/// One libzmq socket. Not thread-safe (libzmq sockets are not): create, use and close it on one
/// thread. Closing happens in `close()` or `deinit`.
public final class ZMQSocket {
    public let type: ZMQSocketType
    private(set) var handle: UnsafeMutableRawPointer?
    /// Keeps the context alive while the socket is open.
    private let context: ZMQContext

    public init(context: ZMQContext, type: ZMQSocketType) throws(ZMQError) {
        guard let h = zmq_socket(context.handle, type.raw) else { throw ZMQError.last("zmq_socket \(type)") }
        self.context = context
        self.type = type
        handle = h
        // Never let a close hang on undelivered messages for more than a second.
        try set(ZMQ_LINGER, Int32(1000), "ZMQ_LINGER")
    }

    deinit { close() }

    /// Closes the socket; further use throws.
    public func close() {
        if let h = handle { zmq_close(h) }
        handle = nil
    }

    private func live(_ operation: String) throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let h = handle else { throw ZMQError(code: ENOTSOCK, operation: operation) }
        return h
    }

    // MARK: Endpoints

    public func bind(_ endpoint: String) throws(ZMQError) {
        let h = try live("bind \(endpoint)")
        guard zmq_bind(h, endpoint) == 0 else { throw ZMQError.last("bind \(endpoint)") }
    }

    /// Stops listening on `endpoint` and closes the connections accepted through it (peers that
    /// reconnect come back through the next bind, handshake and all).
    public func unbind(_ endpoint: String) throws(ZMQError) {
        let h = try live("unbind \(endpoint)")
        guard zmq_unbind(h, endpoint) == 0 else { throw ZMQError.last("unbind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws(ZMQError) {
        let h = try live("connect \(endpoint)")
        guard zmq_connect(h, endpoint) == 0 else { throw ZMQError.last("connect \(endpoint)") }
    }

    /// The endpoint last bound, with the port resolved (bind `tcp://127.0.0.1:*` to get a free one).
    public var lastEndpoint: String {
        guard let h = handle else { return "" }
        var buffer = [CChar](repeating: 0, count: 512)
        var size = buffer.count
        guard zmq_getsockopt(h, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: Options

    private func set(_ option: Int32, _ value: Int32, _ name: String) throws(ZMQError) {
        var v = value
        let h = try live(name)
        guard zmq_setsockopt(h, option, &v, MemoryLayout<Int32>.size) == 0 else { throw ZMQError.last("set \(name)") }
    }

    private func set(_ option: Int32, _ value: Int64, _ name: String) throws(ZMQError) {
        var v = value
        let h = try live(name)
        guard zmq_setsockopt(h, option, &v, MemoryLayout<Int64>.size) == 0 else { throw ZMQError.last("set \(name)") }
    }

    private func set(_ option: Int32, bytes: [UInt8], _ name: String) throws(ZMQError) {
        let h = try live(name)
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(h, option, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw ZMQError.last("set \(name)") }
    }

    /// Milliseconds a close waits for unsent messages (default here 1000).
    public func setLinger(milliseconds: Int32) throws(ZMQError) { try set(ZMQ_LINGER, milliseconds, "ZMQ_LINGER") }
    /// Queue limit for outgoing messages per peer.
    public func setSendHighWaterMark(_ n: Int32) throws(ZMQError) { try set(ZMQ_SNDHWM, n, "ZMQ_SNDHWM") }
    /// Queue limit for incoming messages per peer.
    public func setReceiveHighWaterMark(_ n: Int32) throws(ZMQError) { try set(ZMQ_RCVHWM, n, "ZMQ_RCVHWM") }
    /// Peers sending a bigger message are disconnected by libzmq (-1: no limit).
    public func setMaxMessageSize(_ bytes: Int64) throws(ZMQError) { try set(ZMQ_MAXMSGSIZE, bytes, "ZMQ_MAXMSGSIZE") }

    /// Which of the context's I/O threads serve connections made from now on (bit i: thread i;
    /// 0, the default, lets libzmq choose the least loaded).
    public func setAffinity(_ mask: UInt64) throws(ZMQError) { try set(ZMQ_AFFINITY, Int64(bitPattern: mask), "ZMQ_AFFINITY") }
    /// SUB: receive messages whose first frame starts with `prefix` (empty: everything).
    public func subscribe(_ prefix: [UInt8]) throws(ZMQError) { try set(ZMQ_SUBSCRIBE, bytes: prefix, "ZMQ_SUBSCRIBE") }
    /// ZMTP heartbeats: ping every `interval` ms, drop the peer after `timeout` ms of silence.
    public func setHeartbeat(intervalMilliseconds: Int32, timeoutMilliseconds: Int32, ttlMilliseconds: Int32 = 0) throws(ZMQError) {
        try set(ZMQ_HEARTBEAT_IVL, intervalMilliseconds, "ZMQ_HEARTBEAT_IVL")
        try set(ZMQ_HEARTBEAT_TIMEOUT, timeoutMilliseconds, "ZMQ_HEARTBEAT_TIMEOUT")
        if ttlMilliseconds > 0 { try set(ZMQ_HEARTBEAT_TTL, ttlMilliseconds, "ZMQ_HEARTBEAT_TTL") }
    }
    /// TCP keepalive probes after `idleSeconds` of silence, every `intervalSeconds`, `count` times.
    public func setTCPKeepalive(idleSeconds: Int32, intervalSeconds: Int32, count: Int32) throws(ZMQError) {
        try set(ZMQ_TCP_KEEPALIVE, Int32(1), "ZMQ_TCP_KEEPALIVE")
        try set(ZMQ_TCP_KEEPALIVE_IDLE, idleSeconds, "ZMQ_TCP_KEEPALIVE_IDLE")
        try set(ZMQ_TCP_KEEPALIVE_INTVL, intervalSeconds, "ZMQ_TCP_KEEPALIVE_INTVL")
        try set(ZMQ_TCP_KEEPALIVE_CNT, count, "ZMQ_TCP_KEEPALIVE_CNT")
    }
    /// Blocking receive timeout in ms (-1: forever).
    public func setReceiveTimeout(milliseconds: Int32) throws(ZMQError) { try set(ZMQ_RCVTIMEO, milliseconds, "ZMQ_RCVTIMEO") }
    /// Blocking send timeout in ms (-1: forever).
    public func setSendTimeout(milliseconds: Int32) throws(ZMQError) { try set(ZMQ_SNDTIMEO, milliseconds, "ZMQ_SNDTIMEO") }
    /// XPUB: a send that would exceed a subscriber's high-water mark fails with EAGAIN (a
    /// non-blocking send then returns false) instead of being dropped silently for that subscriber.
    public func setXPubNoDrop(_ on: Bool) throws(ZMQError) { try set(ZMQ_XPUB_NODROP, Int32(on ? 1 : 0), "ZMQ_XPUB_NODROP") }

    /// Publishes this socket's connection events (`events`, ZMQ_EVENT_* bits) on the inproc
    /// `endpoint` and returns the PAIR socket that reads them (`nextMonitorEvent`).
    ///
    /// libzmq sends a monitor's events blocking, on its I/O thread (zeromq/libzmq#3575), so the
    /// reader takes them without limit (a burst while its owner is busy must not stall every
    /// connection's I/O), and a monitor whose reader goes must be stopped first (`stopMonitor`).
    public func monitorReader(_ endpoint: String, events: Int32 = ZMQMonitorEvent.watched) throws(ZMQError) -> ZMQSocket {
        let h = try live("monitor")
        guard zmq_socket_monitor(h, endpoint, events) == 0 else { throw ZMQError.last("zmq_socket_monitor \(endpoint)") }
        let reader = try ZMQSocket(context: context, type: .pair)
        try reader.setReceiveHighWaterMark(0)
        try reader.connect(endpoint)
        return reader
    }

    /// On a `monitorReader`: the next event waiting, or nil when none is.
    public func nextMonitorEvent() -> ZMQMonitorEvent? {
        guard let frames = try? receiveFrames(dontWait: true) else { return nil }
        return ZMQMonitorEvent(frames: frames)
    }

    /// Whether this socket speaks CURVE (its keys are set).
    public var usesCurve: Bool {
        guard let h = handle else { return false }
        var mechanism: Int32 = 0
        var size = MemoryLayout<Int32>.size
        return zmq_getsockopt(h, ZMQ_MECHANISM, &mechanism, &size) == 0 && mechanism == ZMQ_CURVE
    }

    /// Stops the monitor `monitorReader` started, before its reader is closed (see there).
    public func stopMonitor() throws(ZMQError) {
        let h = try live("stopMonitor")
        guard zmq_socket_monitor(h, nil, 0) == 0 else { throw ZMQError.last("zmq_socket_monitor stop") }
    }

    /// Queue only to completed connections.
    public func setImmediate(_ on: Bool) throws(ZMQError) { try set(ZMQ_IMMEDIATE, Int32(on ? 1 : 0), "ZMQ_IMMEDIATE") }

    /// The ZAP domain this socket's connections are authenticated in (sent to the ZAP handler).
    public func setZAPDomain(_ domain: String) throws(ZMQError) { try set(ZMQ_ZAP_DOMAIN, bytes: Array(domain.utf8), "ZMQ_ZAP_DOMAIN") }

    /// Makes this socket a CURVE server with the given 32-byte secret key.
    public func setCurveServer(secretKey: [UInt8]) throws(ZMQError) {
        try set(ZMQ_CURVE_SERVER, Int32(1), "ZMQ_CURVE_SERVER")
        try set(ZMQ_CURVE_SECRETKEY, bytes: secretKey, "ZMQ_CURVE_SECRETKEY")
    }

    /// Makes this socket a CURVE client of a server with `serverKey`, with its own key pair.
    public func setCurveClient(serverKey: [UInt8], publicKey: [UInt8], secretKey: [UInt8]) throws(ZMQError) {
        try set(ZMQ_CURVE_SERVERKEY, bytes: serverKey, "ZMQ_CURVE_SERVERKEY")
        try set(ZMQ_CURVE_PUBLICKEY, bytes: publicKey, "ZMQ_CURVE_PUBLICKEY")
        try set(ZMQ_CURVE_SECRETKEY, bytes: secretKey, "ZMQ_CURVE_SECRETKEY")
    }

    // MARK: Sending

    /// Sends one frame; `more` marks further frames of the same message. Returns false when a
    /// non-blocking send would block (the frame was not queued).
    @discardableResult
    public func send(_ bytes: UnsafeRawBufferPointer, more: Bool = false, dontWait: Bool = false) throws(ZMQError) -> Bool {
        let h = try live("send")
        var flags: Int32 = 0
        if more { flags |= ZMQ_SNDMORE }
        if dontWait { flags |= ZMQ_DONTWAIT }
        while true {
            if zmq_send(h, bytes.baseAddress, bytes.count, flags) >= 0 { return true }
            let e = ZMQError.last("send on \(type) socket")
            if e.interrupted { continue }
            if e.wouldBlock { return false }
            throw e
        }
    }

    /// Sends one frame from an array (no copy beyond libzmq's own).
    @discardableResult
    public func send(_ bytes: [UInt8], more: Bool = false, dontWait: Bool = false) throws(ZMQError) -> Bool {
        var sent = false
        var failure: ZMQError?
        bytes.withUnsafeBytes { b in
            do throws(ZMQError) { sent = try send(b, more: more, dontWait: dontWait) } catch { failure = error }
        }
        if let failure { throw failure }
        return sent
    }

    /// Sends a multipart message.
    @discardableResult
    public func send(frames: [[UInt8]], dontWait: Bool = false) throws(ZMQError) -> Bool {
        for (i, frame) in frames.enumerated() {
            guard try send(frame, more: i < frames.count - 1, dontWait: dontWait) else { return false }
        }
        return true
    }

    // MARK: Receiving

    /// Receives one frame into `message` (any size). Returns false when a non-blocking receive
    /// finds nothing.
    public func receive(into message: ZMQMessage, dontWait: Bool = false) throws(ZMQError) -> Bool {
        let h = try live("receive")
        while true {
            if message.receive(from: h, flags: dontWait ? ZMQ_DONTWAIT : 0) >= 0 { return true }
            let e = ZMQError.last("receive on \(type) socket")
            if e.interrupted { continue }
            if e.wouldBlock { return false }
            throw e
        }
    }

    /// Receives a whole multipart message as byte arrays (convenient for tools and tests; the
    /// daemon's hot path uses `ZMQMultipart`).
    public func receiveFrames(dontWait: Bool = false) throws(ZMQError) -> [[UInt8]]? {
        let message = ZMQMessage()
        var frames: [[UInt8]] = []
        repeat {
            guard try receive(into: message, dontWait: dontWait && frames.isEmpty) else { return nil }
            frames.append(Array(message.bytes))
        } while message.hasMore
        return frames
    }

    /// The raw handle, for `ZMQPoller`.
    var rawHandle: UnsafeMutableRawPointer? { handle }

    /// The descriptor libzmq signals when this socket has commands to process (`ZMQ_FD`), for
    /// `ZMQNotificationPoller`. Edge-triggered: see there.
    public func notificationDescriptor() throws(ZMQError) -> Int32 {
        let h = try live("ZMQ_FD")
        var fd: Int32 = -1
        var size = MemoryLayout<Int32>.size
        guard zmq_getsockopt(h, ZMQ_FD, &fd, &size) == 0 else { throw ZMQError.last("get ZMQ_FD") }
        return fd
    }
}

/// Moves a socket to another thread. libzmq allows a socket to migrate between threads provided
/// a full memory barrier separates the two threads' use of it (starting or joining a thread is
/// one); the sender must not touch the socket until it gets it back.
public struct ZMQSocketHandoff: @unchecked Sendable {
    public let socket: ZMQSocket
    public init(_ socket: ZMQSocket) { self.socket = socket }
}
