import Foundation
import RecurdNumerics

/// One setting of `recurd serve`, declared once: its key (the config file's key and the flag's
/// name), what it takes, its help, whether SIGHUP and `ctl set` can change it on a running
/// daemon, and how it reads and writes a `ServeConfiguration`. The flags, the config reader,
/// `serve --help`, `ctl set` and the documentation checks all come from `ServeSettings.all`.
public struct Setting {
    /// What the setting takes.
    public enum Kind: Equatable {
        case string, strings, integer, integers, number, bool
        case choice([String])

        var word: String {
            switch self {
            case .string: "TEXT"
            case .strings: "TEXT"
            case .integer: "N"
            case .integers: "N[,N…]"
            case .number: "X"
            case .bool: ""
            case .choice(let c): c.joined(separator: "|")
            }
        }
    }

    public let key: String
    public let kind: Kind
    public let help: String
    /// SIGHUP and `ctl set` apply it live; otherwise a change waits for a restart.
    public let reloadable: Bool
    /// Only a command-line flag, never read from the config file (one-off actions).
    public let flagOnly: Bool
    let read: (ServeConfiguration) -> SettingValue
    let write: (inout ServeConfiguration, SettingValue) throws(SettingError) -> Void

    /// The value in `configuration`.
    public func value(in configuration: ServeConfiguration) -> SettingValue { read(configuration) }

    /// Sets `value` (already of this setting's kind) in `configuration`.
    public func apply(_ value: SettingValue, to configuration: inout ServeConfiguration) throws(SettingError) {
        try write(&configuration, value)
    }

    /// Reads `text` (a flag's argument, or a `ctl set` value) as this setting's kind.
    public func parse(_ text: String) throws(SettingError) -> SettingValue {
        let t = text.trimmingCharacters(in: .whitespaces)
        switch kind {
        case .string:
            return .string(t)
        case .strings:
            return .strings(t.isEmpty ? [] : t.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        case .integer:
            guard let i = Int(t.replacingOccurrences(of: "_", with: "")) else { throw SettingError("\(key): '\(text)' is not an integer") }
            return .integer(i)
        case .integers:
            var out: [Int] = []
            for part in t.split(separator: ",") {
                guard let i = Int(part.trimmingCharacters(in: .whitespaces)) else { throw SettingError("\(key): '\(text)' is not a list of integers (e.g. 64,32)") }
                out.append(i)
            }
            return .integers(out)
        case .number:
            guard let d = Double(t.replacingOccurrences(of: "_", with: "")), d.isFinite else { throw SettingError("\(key): '\(text)' is not a finite number") }
            return .number(d)
        case .bool:
            switch t.lowercased() {
            case "true", "on", "yes", "1": return .bool(true)
            case "false", "off", "no", "0": return .bool(false)
            default: throw SettingError("\(key): '\(text)' is not true or false")
            }
        case .choice(let options):
            guard options.contains(t) else { throw SettingError("\(key): '\(text)' is not one of \(options.joined(separator: ", "))") }
            return .string(t)
        }
    }

    /// Converts a config file's value to this setting's kind (numbers where integers are
    /// expected must be whole, one string where a list is expected is a list of one).
    func coerce(_ value: SettingValue) throws(SettingError) -> SettingValue {
        switch (kind, value) {
        case (.string, .string), (.strings, .strings), (.integer, .integer), (.integers, .integers), (.number, .number), (.bool, .bool):
            return value
        case (.choice(let options), .string(let s)):
            guard options.contains(s) else { throw SettingError("\(key): '\(s)' is not one of \(options.joined(separator: ", "))") }
            return value
        case (.strings, .string(let s)): return .strings([s])
        case (.integers, .integer(let i)): return .integers([i])
        case (.number, .integer(let i)): return .number(Double(i))
        case (.integer, .number(let d)) where d == d.rounded() && abs(d) < 1e15: return .integer(Int(d))
        default:
            throw SettingError("\(key) takes \(kindDescription), not \(value.asWritten)")
        }
    }

    var kindDescription: String {
        switch kind {
        case .string: "a string"
        case .strings: "a string or an array of strings"
        case .integer: "an integer"
        case .integers: "an integer or an array of integers"
        case .number: "a number"
        case .bool: "true or false"
        case .choice(let c): "one of \(c.map { "\"\($0)\"" }.joined(separator: ", "))"
        }
    }
}

// MARK: Declaring settings from key paths

extension Setting {
    typealias Path<T> = WritableKeyPath<ServeConfiguration, T>

    static func string(_ key: String, _ path: Path<String>, _ help: String, reloadable: Bool = false) -> Setting {
        Setting(key: key, kind: .string, help: help, reloadable: reloadable, flagOnly: false,
                read: { .string($0[keyPath: path]) },
                write: { c, v throws(SettingError) in if case .string(let s) = v { c[keyPath: path] = s } })
    }

    static func optionalString(_ key: String, _ path: Path<String?>, _ help: String, reloadable: Bool = false) -> Setting {
        Setting(key: key, kind: .string, help: help, reloadable: reloadable, flagOnly: false,
                read: { $0[keyPath: path].map { .string($0) } ?? .none },
                write: { c, v throws(SettingError) in if case .string(let s) = v { c[keyPath: path] = s.isEmpty ? nil : s } })
    }

    static func strings(_ key: String, _ path: Path<[String]>, _ help: String, reloadable: Bool = false) -> Setting {
        Setting(key: key, kind: .strings, help: help, reloadable: reloadable, flagOnly: false,
                read: { .strings($0[keyPath: path]) },
                write: { c, v throws(SettingError) in if case .strings(let s) = v { c[keyPath: path] = s } })
    }

    static func integer(_ key: String, _ path: Path<Int>, _ help: String, reloadable: Bool = false) -> Setting {
        Setting(key: key, kind: .integer, help: help, reloadable: reloadable, flagOnly: false,
                read: { .integer($0[keyPath: path]) },
                write: { c, v throws(SettingError) in if case .integer(let i) = v { c[keyPath: path] = i } })
    }

    static func integers(_ key: String, _ path: Path<[Int]>, _ help: String, reloadable: Bool = false) -> Setting {
        Setting(key: key, kind: .integers, help: help, reloadable: reloadable, flagOnly: false,
                read: { .integers($0[keyPath: path]) },
                write: { c, v throws(SettingError) in if case .integers(let i) = v { c[keyPath: path] = i } })
    }

    static func seed(_ key: String, _ path: Path<UInt64>, _ help: String) -> Setting {
        Setting(key: key, kind: .integer, help: help, reloadable: false, flagOnly: false,
                read: { .integer(Int(truncatingIfNeeded: $0[keyPath: path])) },
                write: { c, v throws(SettingError) in
                    if case .integer(let i) = v {
                        guard i >= 0 else { throw SettingError("\(key) must be ≥ 0") }
                        c[keyPath: path] = UInt64(i)
                    }
                })
    }

    static func number(_ key: String, _ path: Path<Double>, _ help: String, reloadable: Bool = false) -> Setting {
        Setting(key: key, kind: .number, help: help, reloadable: reloadable, flagOnly: false,
                read: { .number($0[keyPath: path]) },
                write: { c, v throws(SettingError) in if case .number(let d) = v { c[keyPath: path] = d } })
    }

    static func float(_ key: String, _ path: Path<Float>, _ help: String, reloadable: Bool = false) -> Setting {
        Setting(key: key, kind: .number, help: help, reloadable: reloadable, flagOnly: false,
                // Through the shortest decimal form, so 0.005 reads back as 0.005.
                read: { .number(Double("\($0[keyPath: path])") ?? Double($0[keyPath: path])) },
                write: { c, v throws(SettingError) in if case .number(let d) = v { c[keyPath: path] = Float(d) } })
    }

    static func bool(_ key: String, _ path: Path<Bool>, _ help: String, reloadable: Bool = false, flagOnly: Bool = false) -> Setting {
        Setting(key: key, kind: .bool, help: help, reloadable: reloadable, flagOnly: flagOnly,
                read: { .bool($0[keyPath: path]) },
                write: { c, v throws(SettingError) in if case .bool(let b) = v { c[keyPath: path] = b } })
    }

    static func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ path: Path<T>, _ help: String, reloadable: Bool = false) -> Setting
    where T.RawValue == String {
        Setting(key: key, kind: .choice(T.allCases.map(\.rawValue)), help: help, reloadable: reloadable, flagOnly: false,
                read: { .string($0[keyPath: path].rawValue) },
                write: { c, v throws(SettingError) in if case .string(let s) = v, let t = T(rawValue: s) { c[keyPath: path] = t } })
    }
}
