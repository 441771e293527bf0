import ZeroMQ

/// Checks on Z85 key text.
enum ZMQCurveText {
    /// 40 Z85 characters that decode to 32 bytes.
    static func isKey(_ text: String) -> Bool { ZMQCurve.decode(text) != nil }
}
