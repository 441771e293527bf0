import ZeroMQ

/// The sockets the serving thread owns, bound or connected per the configuration.
final class ServingEndpoints {
    let input: ZMQSocket
    let output: ZMQSocket
    let control: ZMQSocket?
    /// Endpoints as actually bound (ports resolved), for the ready log line and tests.
    let boundInputs: [String]
    let boundOutput: String
    let boundControl: String?

    init(context: ZMQContext, configuration c: ServeConfiguration) throws(ZMQError) {
        input = try ZMQSocket(context: context, type: c.inputSocket == .sub ? .sub : .pull)
        try input.setReceiveHighWaterMark(Int32(clamping: c.highWaterMark))
        try input.setMaxMessageSize(Int64(c.maxMessageBytes) + 4096)
        // Dead TCP peers are found by kernel keepalives, not ZMTP heartbeats: libzmq 4.3.4 (Debian
        // 12's) can abort on `!_io_error` when a heartbeat times out (zeromq/libzmq#4364).
        try input.setTCPKeepalive(idleSeconds: 30, intervalSeconds: 10, count: 3)
        if c.inputSocket == .sub {
            if c.subscribe.isEmpty { try input.subscribe([]) }
            for p in c.subscribe { try input.subscribe(Array(p.utf8)) }
        }
        var inputs: [String] = []
        for e in c.inputBind { try input.bind(e); inputs.append(input.lastEndpoint) }
        for e in c.inputConnect { try input.connect(e); inputs.append(e) }
        boundInputs = inputs

        output = try ZMQSocket(context: context, type: .pub)
        try output.setSendHighWaterMark(Int32(clamping: c.highWaterMark))
        try output.bind(c.output)
        boundOutput = output.lastEndpoint

        if c.control.isEmpty {
            control = nil
            boundControl = nil
        } else {
            let s = try ZMQSocket(context: context, type: .rep)
            try s.setMaxMessageSize(1 << 16)
            try s.bind(c.control)
            control = s
            boundControl = s.lastEndpoint
        }
    }

    func close() {
        input.close()
        control?.close()
        // Closed last so the predictions of the last batch are flushed (bounded by LINGER).
        output.close()
    }
}
