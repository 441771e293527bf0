import Glibc

/// Waits on sockets' notification descriptors (`ZMQ_FD`) and plain descriptors with poll(2)
/// alone, for a loop that reads its sockets itself.
///
/// `zmq_poll` asks every socket for its events after each wait, and libzmq answers each ask with
/// two system calls (getpid and poll) even when nothing happened; a loop of a few sockets pays
/// them on every cycle. This poller makes one system call per wait. The price is libzmq's edge
/// rule: a socket's descriptor becomes readable when commands reach it (a pipe with new
/// messages, a new peer), and only processing them (any receive that comes back empty, a send,
/// `ZMQ_EVENTS`) clears it. So a socket is only safe to wait on after a receive returned nothing;
/// one that was read only in part, or that was sent on since, must be read again without waiting
/// for its descriptor. The caller keeps that account (see `ServingLoop`).
public final class ZMQNotificationPoller {
    private var items: [pollfd]

    /// Polls `sockets`' notification descriptors, then `descriptors`, in that order.
    public init(_ sockets: [ZMQSocket], descriptors: [Int32] = []) throws(ZMQError) {
        var items: [pollfd] = []
        for s in sockets { items.append(pollfd(fd: try s.notificationDescriptor(), events: Int16(POLLIN), revents: 0)) }
        for d in descriptors { items.append(pollfd(fd: d, events: Int16(POLLIN), revents: 0)) }
        self.items = items
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) for a descriptor to become readable;
    /// writes the readable flags into `ready` (one per item, in item order), which the caller
    /// keeps from wait to wait so that a serving cycle allocates nothing. An interrupting signal
    /// leaves them all false.
    public func poll(timeoutMilliseconds: Int32, into ready: inout [Bool]) throws(ZMQError) {
        precondition(ready.count == items.count, "\(ready.count) flags for \(items.count) items")
        let rc = items.withUnsafeMutableBufferPointer { Glibc.poll($0.baseAddress, nfds_t($0.count), timeoutMilliseconds) }
        if rc < 0, errno != EINTR { throw ZMQError.last("poll") }
        for i in items.indices { ready[i] = rc > 0 && items[i].revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 }
    }
}
