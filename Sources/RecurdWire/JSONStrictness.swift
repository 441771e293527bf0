import Foundation

/// What RFC 8259 refuses but Foundation's JSONSerialization lets through: a trailing comma
/// (`[1,]`, `{"x":[1],}`) and a name repeated in one object, where Foundation silently keeps the
/// last value. A producer that sends `{"x":[1],"x":[2]}` has a bug that one of the two values
/// would hide, so input messages and control requests are refused instead.
///
/// Run it on text JSONSerialization has already accepted: it only walks the structure (strings,
/// brackets, commas) and does not validate values.
public enum JSONStrictness {
    /// What is wrong and at which byte, or nil when the text is strict JSON.
    public static func problem(in bytes: UnsafeRawBufferPointer) -> String? {
        // Per open container: the names seen in it (an object), or nil (an array).
        var containers: [Set<String>?] = []
        var lastSignificant: UInt8 = 0
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "\""):
                let start = i
                i += 1
                var escaped = false
                while i < n && bytes[i] != UInt8(ascii: "\"") {
                    if bytes[i] == UInt8(ascii: "\\") { escaped = true; i += 1 }
                    i += 1
                }
                let inObject = containers.last.map { $0 != nil } ?? false
                if inObject && (lastSignificant == UInt8(ascii: "{") || lastSignificant == UInt8(ascii: ",")) {
                    let raw = UnsafeRawBufferPointer(rebasing: bytes[(start + 1)..<min(i, n)])
                    let name = escaped ? unescaped(UnsafeRawBufferPointer(rebasing: bytes[start..<min(i + 1, n)])) : String(decoding: raw, as: UTF8.self)
                    if !containers[containers.count - 1]!.insert(name).inserted {
                        return "field '\(name)' given twice in one object (byte offset \(start))"
                    }
                }
                lastSignificant = UInt8(ascii: "\"")
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                containers.append(b == UInt8(ascii: "{") ? [] : nil)
                lastSignificant = b
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if lastSignificant == UInt8(ascii: ",") { return "trailing comma before '\(Character(UnicodeScalar(b)))' (byte offset \(i))" }
                if !containers.isEmpty { containers.removeLast() }
                lastSignificant = b
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                break
            default:
                lastSignificant = b
            }
            i += 1
        }
        return nil
    }

    /// A quoted name with escapes, decoded as JSON decodes it (so `"\u0078"` is `x`).
    private static func unescaped(_ quoted: UnsafeRawBufferPointer) -> String {
        let decoded = try? JSONSerialization.jsonObject(with: Data(quoted), options: .fragmentsAllowed) as? String
        return decoded ?? String(decoding: quoted, as: UTF8.self)
    }
}
