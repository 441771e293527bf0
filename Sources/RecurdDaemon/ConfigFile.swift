import TOMLKit

/// Reads a config file: TOML whose top-level keys are the settings' keys (`_` and `-` are the
/// same). Sections are refused rather than ignored, as are unknown keys and values of the wrong
/// kind; every error names the file and the key (or line, for syntax).
public enum ConfigFile {
    /// The settings the text sets (in the parser's order: its tables are sorted maps).
    public static func read(_ text: String, file: String) throws(SettingError) -> [(Setting, SettingValue)] {
        // The TOML parser reads a C string: it would stop at a NUL and take the rest as absent.
        let bytes = text.utf8
        if let nul = bytes.firstIndex(of: 0) {
            let line = 1 + bytes[..<nul].lazy.filter { $0 == UInt8(ascii: "\n") }.count
            throw SettingError("\(file):\(line): a NUL byte at byte offset \(bytes.distance(from: bytes.startIndex, to: nul)); a config file is text")
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw SettingError("\(file):\(e.source.begin.line):\(e.source.begin.column): \(e.description)")
        } catch {
            throw SettingError("\(file): \(error)")
        }
        var out: [(Setting, SettingValue)] = []
        var spelled: [String: String] = [:]
        for (rawKey, node) in table {
            if node.table != nil {
                throw SettingError("\(file): [\(rawKey)]: recurd's config has no sections; write the settings at the top level")
            }
            guard let setting = ServeSettings.named(rawKey) else {
                let hint = ServeSettings.suggestion(for: rawKey).map { " (did you mean '\($0)'?)" } ?? ""
                throw SettingError("\(file): unknown setting '\(rawKey)'\(hint)")
            }
            guard !setting.flagOnly else { throw SettingError("\(file): '\(setting.key)' is a one-off command-line flag, not a config setting") }
            // max_streams and max-streams are one setting: given both ways, neither silently wins.
            if let other = spelled[setting.key] { throw SettingError("\(file): '\(other)' and '\(rawKey)' are the same setting, given twice") }
            spelled[setting.key] = rawKey
            let value: SettingValue
            do { value = try setting.coerce(Self.value(node, key: setting.key)) } catch { throw SettingError("\(file): \(error.description)") }
            out.append((setting, value))
        }
        return out
    }

    private static func value(_ node: any TOMLValueConvertible, key: String) throws(SettingError) -> SettingValue {
        switch node.type {
        case .string: return .string(node.string ?? "")
        case .int: return .integer(node.int ?? 0)
        case .double: return .number(node.double ?? 0)
        case .bool: return .bool(node.bool ?? false)
        case .array:
            let items = node.array.map { Array($0) } ?? []
            if items.allSatisfy({ $0.type == .string }) { return .strings(items.map { $0.string ?? "" }) }
            if items.allSatisfy({ $0.type == .int }) { return .integers(items.map { $0.int ?? 0 }) }
            throw SettingError("\(key): an array must hold only strings or only integers")
        default:
            throw SettingError("\(key): a \(node.type) is not a value recurd reads")
        }
    }
}
