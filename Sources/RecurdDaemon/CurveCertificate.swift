import Foundation

/// A CURVE certificate in the zcert text format that czmq and pyzmq
/// (`zmq.auth.create_certificates`) write, and `recurd keygen` too:
///
/// ```
/// #   ZeroMQ CURVE **Secret** Certificate
/// metadata
///     name = "sensor-7"
/// curve
///     public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
///     secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
/// ```
/// The public file (NAME.key) has no secret-key line; the secret one (NAME.key_secret) has both.
public struct CurveCertificate: Sendable, Equatable {
    public let publicKey: String
    public let secretKey: String?

    public init(publicKey: String, secretKey: String?) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// Parses certificate text; `file` names it in errors.
    public static func parse(_ text: String, file: String) throws(DaemonError) -> CurveCertificate {
        var pub: String?, sec: String?
        // isNewline: "\r\n" (a certificate written on Windows) is one Character, not "\n".
        for (n, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            for (name, slot) in [("public-key", 0), ("secret-key", 1)] where line.hasPrefix(name) {
                let rest = line.dropFirst(name.count).trimmingCharacters(in: .whitespaces)
                guard rest.hasPrefix("="), let open = rest.firstIndex(of: "\""), let close = rest.lastIndex(of: "\""), open < close else {
                    throw DaemonError("\(file) line \(n + 1): \(name) should read \(name) = \"<40 Z85 characters>\"")
                }
                let value = String(rest[rest.index(after: open)..<close])
                guard ZMQCurveText.isKey(value) else {
                    throw DaemonError("\(file) line \(n + 1): \(name) is not a CURVE key (40 Z85 characters)")
                }
                if slot == 0 { pub = value } else { sec = value }
            }
        }
        guard let pub else { throw DaemonError("\(file): no public-key line (is it a zcert certificate, as `recurd keygen` writes?)") }
        return CurveCertificate(publicKey: pub, secretKey: sec)
    }

    /// Reads a certificate file.
    public static func load(_ path: String) throws(DaemonError) -> CurveCertificate {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DaemonError("\(path): cannot read the certificate (missing, or no permission)")
        }
        return try parse(String(decoding: data, as: UTF8.self), file: path)
    }

    /// The zcert text of this certificate (with the secret key only when `secret`).
    public func text(name: String, secret: Bool, created: String) -> String {
        var s = "#   ****  Generated on \(created) by recurd keygen  ****\n"
        s += secret ? "#   ZeroMQ CURVE **Secret** Certificate\n#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
            : "#   ZeroMQ CURVE Public Certificate\n#   Exchange securely, or use a secure mechanism to verify the contents\n#   of this file after exchange.\n\n"
        s += "metadata\n    name = \"\(name)\"\ncurve\n    public-key = \"\(publicKey)\"\n"
        if secret, let secretKey { s += "    secret-key = \"\(secretKey)\"\n" }
        return s
    }
}
