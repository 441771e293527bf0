import Foundation

/// A control request (REP socket). Text — `stats`, `stream sensor-1`, `set lr=0.001` — or JSON
/// `{"command": "stream", "key": "sensor-1"}` / `{"command": "set", "name": "lr", "value": "0.001"}`.
enum ControlCommand: Equatable {
    case stats, streams, checkpoint, model, reload
    case stream(String), reset(String), drop(String)
    case learning(Bool)
    case set(String, String)

    static func parse(_ request: String) -> ControlCommand? {
        let text = request.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("{") {
            guard let o = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any], let c = o["command"] as? String else { return nil }
            let key = o["key"] as? String
            switch c {
            case "stream", "reset", "drop": guard let key else { return nil }; return parse("\(c) \(key)")
            case "learning": guard let on = o["on"] as? Bool else { return nil }; return .learning(on)
            case "set": guard let n = o["name"] as? String, let v = o["value"] else { return nil }; return .set(n, "\(v)")
            default: return parse(c)
            }
        }
        let (verb, rest): (String, String) = {
            guard let space = text.firstIndex(of: " ") else { return (text, "") }
            return (String(text[..<space]), String(text[text.index(after: space)...]).trimmingCharacters(in: .whitespaces))
        }()
        switch (verb, rest) {
        case ("stats", ""): return .stats
        case ("streams", ""): return .streams
        case ("checkpoint", ""): return .checkpoint
        case ("model", ""): return .model
        case ("reload", ""): return .reload
        case ("stream", let k) where !k.isEmpty: return .stream(k)
        case ("reset", let k) where !k.isEmpty: return .reset(k)
        case ("drop", let k) where !k.isEmpty: return .drop(k)
        case ("learning", "on"): return .learning(true)
        case ("learning", "off"): return .learning(false)
        case ("set", let assignment):
            let parts = assignment.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
            return .set(parts[0], parts[1])
        default: return nil
        }
    }
}
