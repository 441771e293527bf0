import CZeroMQ

/// `zmq_poll` over a fixed set of sockets and plain file descriptors (an eventfd that other
/// threads signal, for example), waiting for input — or, made with `writable:`, for room to send.
public final class ZMQPoller {
    private var items: [zmq_pollitem_t]
    private let sockets: [ZMQSocket]
    private let events: Int16

    /// Polls `sockets`, then `descriptors`, in that order, for input.
    public init(_ sockets: [ZMQSocket], descriptors: [Int32] = []) {
        self.sockets = sockets
        events = Int16(ZMQ_POLLIN)
        items = sockets.map { zmq_pollitem_t(socket: $0.rawHandle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
            + descriptors.map { zmq_pollitem_t(socket: nil, fd: $0, events: Int16(ZMQ_POLLIN), revents: 0) }
    }

    /// Polls `sockets` for room to send (a PUSH with ZMQ_IMMEDIATE has none until a peer is
    /// connected).
    public init(writable sockets: [ZMQSocket]) {
        self.sockets = sockets
        events = Int16(ZMQ_POLLOUT)
        items = sockets.map { zmq_pollitem_t(socket: $0.rawHandle, fd: 0, events: Int16(ZMQ_POLLOUT), revents: 0) }
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) for any item to be ready; returns the
    /// ready flags in item order (sockets, then descriptors). An interrupting signal returns
    /// all-false.
    public func poll(timeoutMilliseconds: Int) throws(ZMQError) -> [Bool] {
        let rc = items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, Int32($0.count), timeoutMilliseconds) }
        if rc < 0 {
            let e = ZMQError.last("zmq_poll")
            if e.interrupted { return Array(repeating: false, count: items.count) }
            throw e
        }
        return items.map { $0.revents & events != 0 }
    }
}
