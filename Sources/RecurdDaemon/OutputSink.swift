import ZeroMQ

/// Where published predictions go: the output socket, or a test's collector.
protocol OutputSink: AnyObject {
    /// Hands over one output message; false when it could not be queued (counted as dropped).
    func send(topic: [UInt8], payload: [UInt8]) -> Bool
}

/// The PUB socket as an `OutputSink`: never blocks.
final class SocketOutputSink: OutputSink {
    let socket: ZMQSocket

    init(_ socket: ZMQSocket) { self.socket = socket }

    func send(topic: [UInt8], payload: [UInt8]) -> Bool {
        do {
            guard try socket.send(topic, more: true, dontWait: true) else { return false }
            return try socket.send(payload, more: false, dontWait: true)
        } catch {
            return false
        }
    }
}
