import RecurdNumerics
import RecurdWire

/// The checks every received message passes before it touches a stream (DESIGN §4): two frames,
/// a 1–255-byte UTF-8 key without NUL, a payload within the size limit that decodes, and — once
/// there is a model — values the model can take. Pure: bytes in, a decoded header or the
/// reason for refusing out.
enum MessageCheck {
    /// Checks the key frame.
    static func key(_ key: UnsafeRawBufferPointer) throws(WireError) {
        guard key.count >= 1, key.count <= 255 else { throw WireError(.key, "frame 1: key is \(key.count) bytes; it must be 1–255") }
        if let nul = key.firstIndex(of: 0) { throw WireError(.key, "frame 1: key has a NUL byte at offset \(nul)") }
        guard key.allSatisfy({ $0 < 0x80 }) || String(validating: key, as: UTF8.self) != nil else {
            throw WireError(.key, "frame 1: key is not valid UTF-8")
        }
    }

    /// Checks the frame count and key, then decodes the payload into `arena`; with a model,
    /// checks the message fits it.
    static func decode(frames: Int, key: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, maxMessageBytes: Int,
                       architecture: ModelArchitecture?, into arena: inout InputArena) throws(WireError) -> InputHeader {
        guard frames == 2 else { throw WireError(.frames, "\(frames) frame\(frames == 1 ? "" : "s"); expected 2 (stream key, payload)") }
        try Self.key(key)
        guard payload.count <= maxMessageBytes else {
            throw WireError(.tooLarge, "frame 2: payload is \(payload.count) bytes; the limit is \(maxMessageBytes)")
        }
        let header = try InputDecoder.decode(payload, into: &arena)
        if let architecture { try ModelAdmission.check(header, arena, architecture: architecture) }
        return header
    }
}
