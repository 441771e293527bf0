import Foundation

/// What JSONSerialization says about text it could not parse, for error messages that say what
/// and where: its position is a count of bytes, so it is named as a byte offset.
public enum JSONSyntaxError {
    /// "Invalid value at byte offset 7.", "Unexpected end of file during JSON parse.", or nil
    /// when the error carries no description.
    public static func detail(of error: any Error) -> String? {
        ((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String)?
            .replacingOccurrences(of: "around character", with: "at byte offset")
    }

    /// The literal of a number too large for a Double ("Number 1e999 is not representable in
    /// Swift."), or nil.
    public static func unrepresentableNumber(in detail: String?) -> String? {
        guard let detail, detail.hasPrefix("Number "), detail.hasSuffix(" is not representable in Swift.") else { return nil }
        return String(detail.dropFirst("Number ".count).dropLast(" is not representable in Swift.".count))
    }

    /// Where `literal` first appears in `payload` as a whole token.
    public static func offset(of literal: String, in payload: UnsafeRawBufferPointer) -> Int? {
        let needle = Array(literal.utf8)
        guard !needle.isEmpty, payload.count >= needle.count else { return nil }
        let isNumberByte: (UInt8) -> Bool = { ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || $0 == 0x2D || $0 == 0x2B || $0 == 0x65 || $0 == 0x45 }
        for i in 0...(payload.count - needle.count) where payload[i] == needle[0] {
            guard (0..<needle.count).allSatisfy({ payload[i + $0] == needle[$0] }) else { continue }
            let before = i == 0 ? nil : payload[i - 1], after = i + needle.count < payload.count ? payload[i + needle.count] : nil
            if !(before.map(isNumberByte) ?? false) && !(after.map(isNumberByte) ?? false) { return i }
        }
        return nil
    }
}
