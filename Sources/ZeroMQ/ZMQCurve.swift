import CZeroMQ

/// CURVE keys (libzmq's Z85 text form: 40 characters for 32 bytes).
public enum ZMQCurve {
    /// libzmq was built with CURVE (libsodium or its bundled tweetnacl).
    public static var isAvailable: Bool { zmq_has("curve") != 0 }

    /// A new key pair, Z85-encoded.
    public static func keyPair() throws(ZMQError) -> (publicKey: String, secretKey: String) {
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw ZMQError.last("zmq_curve_keypair") }
        return (text(pub), text(sec))
    }

    /// The 32 bytes of a Z85 key, or nil when `text` is not 40 valid Z85 characters.
    public static func decode(_ text: String) -> [UInt8]? {
        guard text.utf8.count == 40 else { return nil }
        var out = [UInt8](repeating: 0, count: 32)
        let ok = text.withCString { zmq_z85_decode(&out, $0) != nil }
        return ok ? out : nil
    }

    /// The Z85 text of a 32-byte key.
    public static func encode(_ bytes: UnsafeRawBufferPointer) -> String? {
        guard bytes.count == 32 else { return nil }
        var out = [CChar](repeating: 0, count: 41)
        let ok = zmq_z85_encode(&out, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), 32) != nil
        return ok ? text(out) : nil
    }

    /// The public key of a secret one (Z85 in, Z85 out).
    public static func publicKey(ofSecret secret: String) -> String? {
        guard secret.utf8.count == 40 else { return nil }
        var pub = [CChar](repeating: 0, count: 41)
        let ok = secret.withCString { zmq_curve_public(&pub, $0) == 0 }
        return ok ? text(pub) : nil
    }

    private static func text(_ c: [CChar]) -> String {
        String(decoding: c.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
