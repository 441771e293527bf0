import CZeroMQ

/// A libzmq context: the I/O threads sockets run on. Thread-safe; terminate it after closing
/// every socket (each socket sets a finite LINGER, so termination cannot hang).
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    private var terminated = false

    /// Creates a context with `ioThreads` background I/O threads.
    public init(ioThreads: Int32 = 1) throws(ZMQError) {
        guard let h = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        handle = h
        zmq_ctx_set(h, ZMQ_IO_THREADS, ioThreads)
    }

    deinit { terminate() }

    /// Waits until every socket is closed and has sent what it queued (bounded by each socket's
    /// LINGER), then frees the context. Call it after closing the sockets, before the process may
    /// exit, so that the last messages are not lost. Safe to call more than once.
    public func terminate() {
        guard !terminated else { return }
        terminated = true
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    /// libzmq's version, e.g. "4.3.4".
    public static var libraryVersion: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }

    /// Whether libzmq was built with CURVE security.
    public static var hasCurve: Bool { zmq_has("curve") != 0 }
}
