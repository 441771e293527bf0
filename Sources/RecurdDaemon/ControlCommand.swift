import Foundation
import RecurdWire

/// A control request (REP socket). Text — `stats`, `stream sensor-1`, `set lr=0.001` — or JSON
/// `{"command": "stream", "key": "sensor-1"}` / `{"command": "set", "name": "lr", "value": "0.001"}`.
enum ControlCommand: Equatable {
    case stats, streams, checkpoint, model, reload
    case stream(String), reset(String), drop(String)
    case learning(Bool)
    case set(String, String)

    /// Why a request was not understood, in words for the reply.
    struct ParseError: Error, Equatable {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// The commands that take no argument, by name.
    private static let bare: [String: ControlCommand] = ["stats": .stats, "streams": .streams, "checkpoint": .checkpoint, "model": .model, "reload": .reload]

    static func parse(_ request: String) throws(ParseError) -> ControlCommand {
        let text = request.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw ParseError("empty request") }
        if text.hasPrefix("{") { return try parseJSON(text) }
        let (verb, rest): (String, String) = {
            guard let space = text.firstIndex(of: " ") else { return (text, "") }
            return (String(text[..<space]), String(text[text.index(after: space)...]).trimmingCharacters(in: .whitespaces))
        }()
        if let command = bare[verb] {
            guard rest.isEmpty else { throw ParseError("'\(verb)' takes no argument (got '\(rest)')") }
            return command
        }
        switch verb {
        case "stream", "reset", "drop":
            guard !rest.isEmpty else { throw ParseError("'\(verb)' needs a stream key: \(verb) KEY") }
            return verb == "stream" ? .stream(rest) : verb == "reset" ? .reset(rest) : .drop(rest)
        case "learning":
            guard rest == "on" || rest == "off" else { throw ParseError("'learning' takes on or off (got '\(rest)')") }
            return .learning(rest == "on")
        case "set":
            let parts = rest.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw ParseError("'set' takes NAME=VALUE (got '\(rest)')") }
            return .set(parts[0], parts[1])
        default:
            throw ParseError("unknown command '\(verb.prefix(64))'")
        }
    }

    /// `{"command": …}` with the command's own fields.
    private static func parseJSON(_ text: String) throws(ParseError) -> ControlCommand {
        let parsed: Any
        let data = Data(text.utf8)
        do { parsed = try JSONSerialization.jsonObject(with: data) } catch {
            throw ParseError("the request is not valid JSON\(JSONSyntaxError.detail(of: error).map { ": \($0)" } ?? "")")
        }
        let strict = data.withUnsafeBytes { JSONStrictness.problem(in: $0) }
        if let strict { throw ParseError("the request is not valid JSON: \(strict)") }
        guard let o = parsed as? [String: Any] else { throw ParseError("a JSON request is an object") }
        guard let c = o["command"] as? String else { throw ParseError("a JSON request needs a \"command\" string") }
        switch c {
        case "stream", "reset", "drop":
            guard let key = o["key"] as? String, !key.isEmpty else { throw ParseError("'\(c)' needs a \"key\" string") }
            // The key as sent: a text request trims its ends, a JSON one must reach "sensor-1 ".
            return c == "stream" ? .stream(key) : c == "reset" ? .reset(key) : .drop(key)
        case "learning":
            guard let v = o["on"], JSONNumbers.isBool(v), let on = v as? Bool else { throw ParseError("'learning' needs \"on\": true or false") }
            return .learning(on)
        case "set":
            guard let n = o["name"] as? String, let v = o["value"] else { throw ParseError("'set' needs a \"name\" string and a \"value\"") }
            return .set(n, "\(v)")
        default:
            return try parse(c)
        }
    }
}
