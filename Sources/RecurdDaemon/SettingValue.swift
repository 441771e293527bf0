/// A setting's value as written in a config file or on the command line.
public enum SettingValue: Equatable, Sendable, CustomStringConvertible {
    case string(String)
    case strings([String])
    case integer(Int)
    case integers([Int])
    case number(Double)
    case bool(Bool)
    case none

    public var description: String {
        switch self {
        case .string(let s): s.isEmpty ? "\"\"" : s
        case .strings(let a): a.isEmpty ? "[]" : a.joined(separator: ",")
        case .integer(let i): "\(i)"
        case .integers(let a): a.map(String.init).joined(separator: ",")
        case .number(let d): d == d.rounded() && abs(d) < 1e15 ? "\(Int(d))" : "\(d)"
        case .bool(let b): "\(b)"
        case .none: "none"
        }
    }

    /// As a config file writes it (`["a", "b"]`, `"a"`), for errors about a file's value.
    public var asWritten: String {
        switch self {
        case .string(let s): "\"\(s)\""
        case .strings(let a): "[" + a.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        case .integers(let a): "[" + a.map(String.init).joined(separator: ", ") + "]"
        default: description
        }
    }
}
