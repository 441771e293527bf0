import Foundation
import RecurdNumerics

/// Reads a config file: flat TOML (`key = value`, `#` comments; strings, numbers, booleans and
/// arrays of strings or numbers). Keys are the `serve` flag names; `_` and `-` are the same.
public enum ConfigFile {
    /// A value as written.
    enum Value: Equatable {
        case string(String)
        case number(Double)
        case bool(Bool)
        case array([Value])
    }

    public struct Problem: Error, CustomStringConvertible, Equatable {
        public let file: String
        public let line: Int
        public let reason: String
        public var description: String { "\(file):\(line): \(reason)" }
    }

    /// Applies the file's settings over `base`.
    public static func apply(_ text: String, file: String, to base: ServeConfiguration) throws(Problem) -> ServeConfiguration {
        var config = base
        var lineNumber = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = stripComment(String(raw)).trimmingSpaces()
            if line.isEmpty { continue }
            if line.hasPrefix("[") { continue }   // section headers group keys for the reader only
            guard let eq = line.firstIndex(of: "=") else { throw Problem(file: file, line: lineNumber, reason: "expected key = value") }
            let key = String(line[..<eq]).trimmingSpaces().replacingUnderscores()
            let valueText = String(line[line.index(after: eq)...]).trimmingSpaces()
            let value: Value
            do { value = try parseValue(valueText) } catch { throw Problem(file: file, line: lineNumber, reason: "\(key): \(error.reason)") }
            do { try set(key, value, &config) } catch { throw Problem(file: file, line: lineNumber, reason: error.reason) }
        }
        return config
    }

    struct ValueError: Error { let reason: String }

    static func stripComment(_ s: String) -> String {
        var inString: Character?
        var out = ""
        for c in s {
            if let q = inString { if c == q { inString = nil } } else if c == "\"" || c == "'" { inString = c } else if c == "#" { break }
            out.append(c)
        }
        return out
    }

    static func parseValue(_ s: String) throws(ValueError) -> Value {
        if s.hasPrefix("[") {
            guard s.hasSuffix("]") else { throw ValueError(reason: "unterminated array") }
            let inner = s.dropFirst().dropLast().trimmingSpaces()
            if inner.isEmpty { return .array([]) }
            var items: [Value] = []
            for part in splitTopLevel(String(inner)) {
                let p = part.trimmingSpaces()
                if p.isEmpty { continue }
                items.append(try parseValue(p))
            }
            return .array(items)
        }
        if (s.hasPrefix("\"") && s.hasSuffix("\"") && s.count >= 2) || (s.hasPrefix("'") && s.hasSuffix("'") && s.count >= 2) {
            return .string(String(s.dropFirst().dropLast()))
        }
        if s == "true" { return .bool(true) }
        if s == "false" { return .bool(false) }
        if let d = Double(s.replacingOccurrences(of: "_", with: "")) { return .number(d) }
        throw ValueError(reason: "cannot read value '\(s)' (strings need quotes)")
    }

    static func splitTopLevel(_ s: String) -> [String] {
        var parts: [String] = [], current = "", quote: Character?
        for c in s {
            if let q = quote { if c == q { quote = nil } } else if c == "\"" || c == "'" { quote = c } else if c == "," { parts.append(current); current = ""; continue }
            current.append(c)
        }
        parts.append(current)
        return parts
    }

    static func set(_ key: String, _ value: Value, _ c: inout ServeConfiguration) throws(ValueError) {
        func string() throws(ValueError) -> String {
            guard case .string(let s) = value else { throw ValueError(reason: "\(key) takes a string") }
            return s
        }
        func strings() throws(ValueError) -> [String] {
            switch value {
            case .string(let s): return [s]
            case .array(let items):
                var out: [String] = []
                for i in items { guard case .string(let s) = i else { throw ValueError(reason: "\(key) takes strings") }; out.append(s) }
                return out
            default: throw ValueError(reason: "\(key) takes a string or an array of strings")
            }
        }
        func number() throws(ValueError) -> Double {
            guard case .number(let d) = value else { throw ValueError(reason: "\(key) takes a number") }
            return d
        }
        func integer() throws(ValueError) -> Int {
            let d = try number()
            guard d.rounded() == d, abs(d) < 1e15 else { throw ValueError(reason: "\(key) takes an integer") }
            return Int(d)
        }
        func bool() throws(ValueError) -> Bool {
            guard case .bool(let b) = value else { throw ValueError(reason: "\(key) takes true or false") }
            return b
        }
        func choice<T: RawRepresentable & CaseIterable>(_: T.Type) throws(ValueError) -> T where T.RawValue == String {
            let s = try string()
            guard let v = T(rawValue: s) else { throw ValueError(reason: "\(key): '\(s)' is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))") }
            return v
        }
        switch key {
        case "model": c.model = try string()
        case "input": c.inputBind = try strings()
        case "input-connect": c.inputConnect = try strings()
        case "input-socket": c.inputSocket = try choice(ServeConfiguration.InputSocket.self)
        case "subscribe": c.subscribe = try strings()
        case "output": c.output = try string()
        case "output-prefix": c.outputPrefix = try string()
        case "output-format": c.outputFormat = try choice(ServeConfiguration.OutputFormat.self)
        case "top-k": c.topK = try integer()
        case "control": c.control = try string()
        case "http": c.http = try string()
        case "state-dir": c.stateDirectory = try string()
        case "learn": c.learn = try bool()
        case "max-streams": c.maxStreams = try integer()
        case "idle-timeout": c.idleTimeout = try number()
        case "max-message-bytes": c.maxMessageBytes = try integer()
        case "max-batch": c.maxBatch = try integer()
        case "on-gap": c.onGap = try choice(ServeConfiguration.GapPolicy.self)
        case "targets": c.targets = try choice(ServeConfiguration.Targets.self)
        case "high-water-mark": c.highWaterMark = try integer()
        case "log-level": c.logLevel = try string()
        case "new-model-cell": c.newModelCell = try choice(CellKind.self)
        case "new-model-head": c.newModelHead = try choice(HeadKind.self)
        case "new-model-embedding": c.newModelEmbedding = try integer()
        case "new-model-seed": c.newModelSeed = UInt64(max(0, try integer()))
        case "new-model-hidden":
            switch value {
            case .number: c.newModelHidden = [try integer()]
            case .array(let items):
                var sizes: [Int] = []
                for i in items { guard case .number(let d) = i, d.rounded() == d, d >= 1 else { throw ValueError(reason: "new-model-hidden takes positive integers") }; sizes.append(Int(d)) }
                c.newModelHidden = sizes
            default: throw ValueError(reason: "new-model-hidden takes an integer or an array of integers")
            }
        case "k1": c.k1 = try integer()
        case "k2": c.k2 = try integer()
        case "optimizer": c.optimizer = try choice(OptimizerKind.self)
        case "lr": c.learningRate = Float(try number())
        case "clip": c.clip = Float(try number())
        case "train-batch": c.trainBatch = try integer()
        case "train-queue": c.trainQueue = try integer()
        case "sync-learning": c.syncLearning = try bool()
        case "trainer-priority": c.trainerPriority = try choice(ServeConfiguration.TrainerPriority.self)
        case "normalize": c.normalize = try bool()
        default: throw ValueError(reason: "unknown setting '\(key)'")
        }
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
    func replacingUnderscores() -> String { String(map { $0 == "_" ? "-" : $0 }) }
}
