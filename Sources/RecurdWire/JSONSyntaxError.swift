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
}
