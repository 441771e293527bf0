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
}
