import Foundation

/// Where `serve`'s settings come from: built-in defaults, then the config file, then the
/// command-line flags. Kept by the daemon so that SIGHUP can run the same merge again.
public struct SettingsSource: Sendable {
    /// The config file, if any.
    public var configFile: String?
    /// Flags in command-line order (key, value as given).
    public var flags: [FlagAssignment]

    public struct FlagAssignment: Sendable, Equatable {
        public let key: String
        public let value: SettingValue
    }

    public init(configFile: String? = nil, flags: [FlagAssignment] = []) {
        self.configFile = configFile
        self.flags = flags
    }

    /// Parses `serve`'s arguments: `--config F`, `--KEY VALUE` or `--KEY=VALUE`, `--FLAG` /
    /// `--no-FLAG` for switches; repeating a list setting's flag adds to the list.
    public static func parse(arguments: [String]) throws(SettingError) -> SettingsSource {
        var source = SettingsSource()
        var lists: [String: [String]] = [:]
        var order: [String] = []
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            guard arg.hasPrefix("--"), arg.count > 2 else { throw SettingError("unexpected argument '\(arg)'; settings are --KEY VALUE (see recurd serve --help)") }
            var name = String(arg.dropFirst(2))
            var inline: String?
            if let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            if name == "config" {
                guard let v = inline ?? (i < arguments.count ? arguments[i] : nil) else { throw SettingError("--config needs a file") }
                if inline == nil { i += 1 }
                source.configFile = v
                continue
            }
            var negated = false
            var setting = ServeSettings.named(name)
            if setting == nil, name.hasPrefix("no-"), let s = ServeSettings.named(String(name.dropFirst(3))), s.kind == .bool {
                setting = s
                negated = true
            }
            guard let setting else {
                let hint = ServeSettings.suggestion(for: name, flag: true).map { " (did you mean --\($0)?)" } ?? ""
                throw SettingError("unknown option --\(name)\(hint)")
            }
            let value: SettingValue
            if setting.kind == .bool {
                if let inline { value = try setting.parse(inline) } else { value = .bool(!negated) }
                if negated, inline != nil { throw SettingError("--no-\(setting.key) takes no value") }
            } else {
                guard let text = inline ?? (i < arguments.count ? arguments[i] : nil) else { throw SettingError("--\(setting.key) needs a value") }
                if inline == nil { i += 1 }
                if setting.kind == .strings {
                    if lists[setting.key] == nil { order.append(setting.key) }
                    // `--input ''` (alone) clears the list: no bound input, as `input = []` in the file.
                    lists[setting.key, default: []].append(contentsOf: text.trimmingCharacters(in: .whitespaces).isEmpty ? [] : [text])
                    continue
                }
                value = try setting.parse(text)
            }
            source.flags.append(FlagAssignment(key: setting.key, value: value))
        }
        for key in order { source.flags.append(FlagAssignment(key: key, value: .strings(lists[key]!))) }
        return source
    }

    /// Defaults, then the file, then the flags; checked for consistency.
    public func resolve() throws(SettingError) -> ServeConfiguration {
        var c = ServeConfiguration()
        var set: Set<String> = []
        var fromFile: ServeConfiguration?
        if let configFile {
            let text: String
            do { text = try String(contentsOfFile: configFile, encoding: .utf8) } catch {
                // Foundation's own words for these are "error 256"; say which it is.
                var isDirectory: ObjCBool = false
                let exists = FileManager.default.fileExists(atPath: configFile, isDirectory: &isDirectory)
                let why = !exists ? "no such file" : isDirectory.boolValue ? "a directory, not a config file"
                    : !FileManager.default.isReadableFile(atPath: configFile) ? "not readable (permissions)" : (error as NSError).localizedDescription
                throw SettingError("config \(configFile): \(why)")
            }
            for (setting, value) in try ConfigFile.read(text, file: configFile) {
                try setting.apply(value, to: &c)
                set.insert(setting.key)
            }
            fromFile = c
        }
        var flagsOnly = ServeConfiguration()
        for f in flags {
            guard let setting = ServeSettings.named(f.key) else { continue }
            try setting.apply(f.value, to: &c)
            try setting.apply(f.value, to: &flagsOnly)
            set.insert(f.key)
        }
        // Connecting the input to producers replaces the default bind, unless a bind was asked for too.
        if !c.inputConnect.isEmpty && !set.contains("input") { c.inputBind = [] }
        // A small max-streams with the default max-batch: the batch follows it down (it must
        // stay below max-streams) rather than refusing a setting the operator never gave.
        if !set.contains("max-batch") && c.maxStreams <= c.maxBatch { c.maxBatch = max(1, c.maxStreams - 1) }
        if let problem = c.problem() {
            // Named by the file when the file alone has it and the flags alone do not.
            if let configFile, fromFile?.problem() == problem, flagsOnly.problem() != problem { throw SettingError("\(configFile): \(problem)") }
            throw SettingError(problem)
        }
        return c
    }

    /// `serve --help`: every setting with its default and help.
    public static var helpText: String {
        let defaults = ServeConfiguration()
        var lines = ["Settings (flags, or keys of the --config TOML file; flags win; [live]: SIGHUP and `ctl set` change it on a running daemon):", ""]
        for s in ServeSettings.all {
            let flag = s.kind == .bool ? "--[no-]\(s.key)" : "--\(s.key) \(s.kind.word)"
            let note = (s.reloadable ? " [live]" : "") + (s.flagOnly ? " [command line only]" : "")
            lines.append("  \(flag)")
            lines.append("      \(s.help) (default \(s.value(in: defaults)))\(note)")
        }
        return lines.joined(separator: "\n")
    }
}
