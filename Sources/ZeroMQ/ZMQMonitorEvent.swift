import CZeroMQ

/// A connection event read from a socket monitor (`ZMQSocket.monitor`).
public struct ZMQMonitorEvent: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case accepted, connected, disconnected, handshakeFailed = "handshake_failed", handshakeSucceeded = "handshake_succeeded"
        /// The authentication handler refused the peer.
        case authFailed = "auth_failed"
        case other
    }

    public let kind: Kind
    /// The event's value: for a failed handshake, libzmq's ZMQ_PROTOCOL_ERROR_* code (or an errno).
    public let value: UInt32
    /// The peer's or the listener's endpoint.
    public let endpoint: String

    /// A failed handshake's value when the two sides' security mechanisms differ (CURVE on one
    /// side only).
    public static let mechanismMismatch = UInt32(ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)

    /// The events a monitor is asked for.
    public static let watched: Int32 = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
        | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_SUCCEEDED

    /// Decodes the monitor's two frames (event id and value, then the endpoint).
    public init?(frames: [[UInt8]]) {
        guard frames.count == 2, frames[0].count >= 6 else { return nil }
        let id = Int32(UInt16(frames[0][0]) | UInt16(frames[0][1]) << 8)
        value = (2..<6).reduce(UInt32(0)) { $0 | UInt32(frames[0][$1]) << (8 * UInt32($1 - 2)) }
        switch id {
        case ZMQ_EVENT_ACCEPTED: kind = .accepted
        case ZMQ_EVENT_CONNECTED: kind = .connected
        case ZMQ_EVENT_DISCONNECTED: kind = .disconnected
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: kind = .handshakeSucceeded
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: kind = .handshakeFailed
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: kind = .authFailed
        default: kind = .other
        }
        endpoint = String(decoding: frames[1], as: UTF8.self)
    }
}
