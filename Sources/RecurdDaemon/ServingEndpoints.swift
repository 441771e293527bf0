import ZeroMQ

/// The sockets the serving thread owns, bound or connected per the configuration.
final class ServingEndpoints {
    let input: ZMQSocket
    /// XPUB with XPUB_NODROP: an output a subscriber's queue cannot take fails the send, so the
    /// daemon counts it (`recurd_output_dropped_total`) instead of libzmq dropping it unseen.
    let output: ZMQSocket
    let control: ZMQSocket?
    /// The input's connection events (accepted, disconnected, failed handshakes).
    let inputMonitor: ZMQSocket
    /// With CURVE: the output's and control's failed handshakes (plaintext clients), counted as
    /// denials.
    let outputMonitor: ZMQSocket?
    let controlMonitor: ZMQSocket?
    /// Endpoints as actually bound (ports resolved), for the ready log line and tests.
    let boundInputs: [String]
    let boundOutput: String
    let boundControl: String?

    /// Payloads up to this many times `max-message-bytes` are received and refused (counted as
    /// `too_large`) without touching the connection; bigger ones make libzmq drop the sender's
    /// connection (counted as a disconnection), which bounds what one message can cost.
    static let receiveLimitFactor = 16
    /// Control requests libzmq takes at all; beyond 64 KiB they get an error reply.
    static let controlReceiveLimit: Int64 = 16 << 20

    /// `curveSecretKey`: the server's 32-byte secret key, when CURVE is on (a `ZAPHandler` must be
    /// bound in `context` first).
    init(context: ZMQContext, configuration c: ServeConfiguration, curveSecretKey: [UInt8]? = nil) throws(ZMQError) {
        func secure(_ s: ZMQSocket, _ domain: CurveRoles.Domain) throws(ZMQError) {
            guard let curveSecretKey else { return }
            try s.setZAPDomain(domain.rawValue)
            try s.setCurveServer(secretKey: curveSecretKey)
        }
        func monitor(_ s: ZMQSocket, _ name: String) throws(ZMQError) -> ZMQSocket {
            try s.monitorReader("inproc://recurd-\(name)-monitor")
        }
        input = try ZMQSocket(context: context, type: c.inputSocket == .sub ? .sub : .pull)
        try secure(input, .input)
        try input.setReceiveHighWaterMark(Int32(clamping: c.highWaterMark))
        try input.setMaxMessageSize(Self.inputReceiveLimit(c))
        // Dead TCP peers are found by kernel keepalives, not ZMTP heartbeats: libzmq 4.3.4 (Debian
        // 12's) can abort on `!_io_error` when a heartbeat times out (zeromq/libzmq#4364).
        try input.setTCPKeepalive(idleSeconds: 30, intervalSeconds: 10, count: 3)
        if c.inputSocket == .sub {
            if c.subscribe.isEmpty { try input.subscribe([]) }
            for p in c.subscribe { try input.subscribe(Array(p.utf8)) }
        }
        inputMonitor = try monitor(input, "input")
        var inputs: [String] = []
        for e in c.inputBind { try input.bind(e); inputs.append(input.lastEndpoint) }
        for e in c.inputConnect { try input.connect(e); inputs.append(e) }
        boundInputs = inputs

        output = try ZMQSocket(context: context, type: .xpub)
        try secure(output, .output)
        outputMonitor = curveSecretKey == nil ? nil : try monitor(output, "output")
        try output.setSendHighWaterMark(Int32(clamping: c.highWaterMark))
        try output.setXPubNoDrop(true)
        try output.bind(c.output)
        boundOutput = output.lastEndpoint

        if c.control.isEmpty {
            control = nil
            controlMonitor = nil
            boundControl = nil
        } else {
            let s = try ZMQSocket(context: context, type: .rep)
            try secure(s, .control)
            controlMonitor = curveSecretKey == nil ? nil : try monitor(s, "control")
            try s.setMaxMessageSize(Self.controlReceiveLimit)
            try s.bind(c.control)
            control = s
            boundControl = s.lastEndpoint
        }
    }

    static func inputReceiveLimit(_ c: ServeConfiguration) -> Int64 {
        Int64(c.maxMessageBytes) * Int64(receiveLimitFactor) + 4096
    }

    func close() {
        input.close()
        inputMonitor.close()
        outputMonitor?.close()
        controlMonitor?.close()
        control?.close()
        // Closed last so the predictions of the last batch are flushed (bounded by LINGER).
        output.close()
    }
}
