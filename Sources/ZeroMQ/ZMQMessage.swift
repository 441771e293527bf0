import CZeroMQ

/// An owned `zmq_msg_t`: receives a frame of any size without copying it; its bytes stay valid
/// until the next receive into the same message or its release.
public final class ZMQMessage {
    private var message = zmq_msg_t()

    public init() { zmq_msg_init(&message) }
    deinit { zmq_msg_close(&message) }

    func receive(from socket: UnsafeMutableRawPointer, flags: Int32) -> Int32 {
        zmq_msg_recv(&message, socket, flags)
    }

    /// The frame's bytes (valid until this message is reused or released).
    public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: zmq_msg_data(&message), count: zmq_msg_size(&message))
    }

    public var count: Int { zmq_msg_size(&message) }

    /// More frames of the same multipart message follow.
    public var hasMore: Bool { zmq_msg_more(&message) != 0 }

    /// A metadata property of the connection the frame came on (e.g. "User-Id", which a ZAP
    /// handler set when it authenticated the peer), or nil. Valid while the frame is.
    public func property(_ name: UnsafePointer<CChar>) -> UnsafePointer<CChar>? {
        zmq_msg_gets(&message, name)
    }
}

/// Receives multipart messages into a fixed set of reusable frames, so the hot path allocates
/// nothing. Frames beyond `capacity` are received and discarded, but counted, so a message with
/// too many frames is still consumed whole (and can be rejected).
public final class ZMQMultipart {
    public let capacity: Int
    private let frames: [ZMQMessage]
    private let overflow = ZMQMessage()
    /// Frames in the last message received (may exceed `capacity`).
    public private(set) var frameCount = 0

    public init(capacity: Int) {
        self.capacity = capacity
        frames = (0..<capacity).map { _ in ZMQMessage() }
    }

    /// Receives the next whole message. Returns false when nothing is waiting (`dontWait`).
    public func receive(from socket: ZMQSocket, dontWait: Bool) throws(ZMQError) -> Bool {
        frameCount = 0
        guard try socket.receive(into: frames[0], dontWait: dontWait) else { return false }
        frameCount = 1
        var more = frames[0].hasMore
        while more {
            // The remaining frames of a multipart message are already queued: never blocks.
            let target = frameCount < capacity ? frames[frameCount] : overflow
            _ = try socket.receive(into: target, dontWait: false)
            frameCount += 1
            more = target.hasMore
        }
        return true
    }

    /// Frame `i` (< min(frameCount, capacity)).
    public func frame(_ i: Int) -> UnsafeRawBufferPointer { frames[i].bytes }

    /// The "User-Id" a ZAP handler gave the connection the last message came on (nil: none).
    public var userId: UnsafePointer<CChar>? { frameCount > 0 ? frames[0].property("User-Id") : nil }
}
