import CZeroMQ

/// A libzmq call failed. `description` says which call, on which endpoint, and libzmq's reason.
public struct ZMQError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The errno value libzmq reported.
    public let code: Int32
    /// What was being done, e.g. `bind tcp://127.0.0.1:5555`.
    public let operation: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    /// The error of the last failed libzmq call on this thread.
    static func last(_ operation: String) -> ZMQError { ZMQError(code: zmq_errno(), operation: operation) }

    public var message: String { String(cString: zmq_strerror(code)) }
    public var description: String { "\(operation): \(message)" }

    /// The call would have blocked (non-blocking send or receive).
    public var wouldBlock: Bool { code == EAGAIN }
    /// The context was terminated under the socket.
    public var contextTerminated: Bool { code == ETERM }
    /// A signal interrupted a blocking call.
    public var interrupted: Bool { code == EINTR }
}
