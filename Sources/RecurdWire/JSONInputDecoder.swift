import Foundation

/// The JSON input form, for low-rate producers and debugging:
/// `{"seq": 7, "ts": 0, "x": [..]}` or `"xs": [[..],..]`, `"tokens": [..]`, `"text": ".."`,
/// targets `"y"`/`"ys"`/`"label"`/`"labels"`, flags `"reset"`, `"end"`, `"no_learn"`,
/// `"no_predict"`. Unknown fields are refused so that typos do not pass silently.
enum JSONInputDecoder {
    static let knownFields: Set<String> = ["seq", "ts", "x", "xs", "tokens", "text", "y", "ys", "label", "labels", "reset", "end", "no_learn", "no_predict"]

    static func decode(_ payload: UnsafeRawBufferPointer) throws(WireError) -> InputMessage {
        try decode(payload, clampHugeNumbers: true)
    }

    private static func decode(_ payload: UnsafeRawBufferPointer, clampHugeNumbers: Bool) throws(WireError) -> InputMessage {
        let object: [String: Any]
        do {
            guard let o = try JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any] else {
                throw WireError(.json, "the payload is not a JSON object")
            }
            object = o
        } catch let e as WireError {
            throw e
        } catch {
            let detail = JSONSyntaxError.detail(of: error)
            if clampHugeNumbers, JSONSyntaxError.unrepresentableNumber(in: detail) != nil, let copy = clampingHugeNumbers(payload) {
                // A number beyond any Double (1e999): Foundation refuses the whole text. Every such
                // number, in one pass, becomes a float32-overflowing one of the same length (byte
                // offsets stay), and the copy is decoded once more, so that the field decides, as
                // for 1e39: non_finite in x/y, json where a number cannot be (seq, an unknown field).
                let again: Result<InputMessage, WireError> = copy.withUnsafeBytes { b in
                    Result { () throws(WireError) in try decode(b, clampHugeNumbers: false) }
                }
                return try again.get()
            }
            throw WireError(.json, "invalid JSON (\(payload.count) bytes)\(detail.map { ": \($0)" } ?? "")")
        }
        if let problem = JSONStrictness.problem(in: payload) { throw WireError(.json, "invalid JSON: \(problem)") }
        if let unknown = object.keys.sorted().first(where: { !knownFields.contains($0) }) {
            throw WireError(.json, "unknown field '\(unknown)'")
        }
        var flags: WireFlags = []
        for (name, flag) in [("reset", WireFlags.reset), ("end", .end), ("no_learn", .noLearn), ("no_predict", .noPredict)] {
            guard let v = object[name] else { continue }
            guard let b = v as? Bool, JSONNumbers.isBool(v) else { throw WireError(.json, "'\(name)' must be true or false") }
            if b { flags.insert(flag) }
        }
        var seq: UInt64?
        if let v = object["seq"] {
            guard let n = JSONNumbers.unsignedInteger(v) else { throw WireError(.json, "'seq' must be a non-negative integer") }
            seq = n
        }
        var timestamp: Int64 = 0
        if let v = object["ts"] {
            guard let n = JSONNumbers.integer(v) else { throw WireError(.json, "'ts' must be an integer (ns since the Unix epoch)") }
            timestamp = n
        }

        let inputFields = ["x", "xs", "tokens", "text"].filter { object[$0] != nil }
        guard inputFields.count <= 1 else { throw WireError(.json, "give one of x, xs, tokens, text (got \(inputFields.joined(separator: ", ")))") }
        var message = InputMessage(inputKind: .features, xdim: 0, steps: 0, seq: seq, timestamp: timestamp)
        message.flags = flags
        switch inputFields.first {
        case "x":
            let row = try floatRow(object["x"]!, field: "x", step: 0)
            guard !row.isEmpty else { throw WireError(.xdim, "'x' is empty") }
            message.features = row; message.xdim = row.count; message.steps = 1
        case "xs":
            guard let rows = object["xs"] as? [Any] else { throw WireError(.json, "'xs' must be an array of arrays of numbers") }
            var all: [Float] = []
            var width = -1
            for (i, r) in rows.enumerated() {
                let row = try floatRow(r, field: "xs", step: i)
                if width < 0 { width = row.count }
                guard row.count == width, width > 0 else { throw WireError(.xdim, "'xs' step \(i) has \(row.count) values; step 0 has \(width)") }
                all += row
            }
            message.features = all; message.xdim = max(width, 1); message.steps = rows.count
        case "tokens":
            guard let ids = object["tokens"] as? [Any] else { throw WireError(.json, "'tokens' must be an array of integers") }
            message.tokens = try ids.enumerated().map { (i, v) throws(WireError) in try unsigned(v, field: "tokens", step: i) }
            message.inputKind = .token; message.xdim = 1; message.steps = ids.count
        case "text":
            guard let s = object["text"] as? String else { throw WireError(.json, "'text' must be a string") }
            message.tokens = s.utf8.map { UInt32($0) }
            message.inputKind = .text; message.xdim = 1; message.steps = message.tokens.count
        default:
            message.xdim = 1
        }
        guard message.steps > 0 || !flags.isDisjoint(with: [.reset, .end]) else {
            throw WireError(.empty, "no steps (x, xs, tokens or text) and neither reset nor end")
        }

        let targetFields = ["y", "ys", "label", "labels"].filter { object[$0] != nil }
        guard targetFields.count <= 1 else { throw WireError(.json, "give one of y, ys, label, labels (got \(targetFields.joined(separator: ", ")))") }
        if let field = targetFields.first {
            switch field {
            case "y":
                let row = try floatRow(object["y"]!, field: "y", step: 0)
                guard !row.isEmpty else { throw WireError(.ydim, "'y' is empty") }
                message.targetValues = row; message.ydim = row.count; message.targetKind = .values
                try checkTargetCount(1, message.steps, field)
            case "ys":
                guard let rows = object["ys"] as? [Any] else { throw WireError(.json, "'ys' must be an array of arrays of numbers") }
                var width = -1
                for (i, r) in rows.enumerated() {
                    let row = try floatRow(r, field: "ys", step: i)
                    if width < 0 { width = row.count }
                    guard row.count == width, width > 0 else { throw WireError(.ydim, "'ys' step \(i) has \(row.count) values; step 0 has \(width)") }
                    message.targetValues += row
                }
                message.ydim = max(width, 1); message.targetKind = .values
                try checkTargetCount(rows.count, message.steps, field)
            case "label":
                message.targetClasses = [try unsigned(object["label"]!, field: "label", step: 0)]
                message.ydim = 1; message.targetKind = .classIndex
                try checkTargetCount(1, message.steps, field)
            default:
                guard let ids = object["labels"] as? [Any] else { throw WireError(.json, "'labels' must be an array of integers") }
                message.targetClasses = try ids.enumerated().map { (i, v) throws(WireError) in try unsigned(v, field: "labels", step: i) }
                message.ydim = 1; message.targetKind = .classIndex
                try checkTargetCount(ids.count, message.steps, field)
            }
        }
        return message
    }

    private static func checkTargetCount(_ targets: Int, _ steps: Int, _ field: String) throws(WireError) {
        guard targets == steps else { throw WireError(.json, "'\(field)' has \(targets) target\(targets == 1 ? "" : "s") for \(steps) step\(steps == 1 ? "" : "s")") }
    }

    private static func unsigned(_ v: Any, field: String, step: Int) throws(WireError) -> UInt32 {
        guard let n = JSONNumbers.integer(v), n >= 0, n <= Int64(UInt32.max) else { throw WireError(.json, "'\(field)' step \(step) is not an integer in 0…4294967295") }
        return UInt32(n)
    }

    private static func floatRow(_ v: Any, field: String, step: Int) throws(WireError) -> [Float] {
        guard let items = v as? [Any] else { throw WireError(.json, "'\(field)' step \(step) must be an array of numbers") }
        // The binary form's xdim and ydim are u16: no model takes wider rows.
        guard items.count <= 65_535 else {
            throw WireError(field.hasPrefix("x") ? .xdim : .ydim, "'\(field)' step \(step) has \(items.count) values, more than 65535")
        }
        var row: [Float] = []
        row.reserveCapacity(items.count)
        for (j, item) in items.enumerated() {
            guard let d = JSONNumbers.number(item) else { throw WireError(.json, "'\(field)' step \(step) element \(j) is not a number") }
            let f = Float(d)
            guard f.isFinite else { throw WireError(.nonFinite, "'\(field)' step \(step) element \(j) (\(d)) is not a finite float32") }
            row.append(f)
        }
        return row
    }

    /// A copy of `payload` with every number literal outside strings that overflows a Double
    /// replaced by ±1e39 padded with spaces to its length, or nil if there is none. One pass, so
    /// that a payload of many such numbers costs what one costs.
    static func clampingHugeNumbers(_ payload: UnsafeRawBufferPointer) -> [UInt8]? {
        var copy: [UInt8]?
        var i = 0, inString = false
        let n = payload.count
        while i < n {
            let b = payload[i]
            if inString {
                if b == UInt8(ascii: "\\") { i += 2; continue }
                if b == UInt8(ascii: "\"") { inString = false }
                i += 1
                continue
            }
            if b == UInt8(ascii: "\"") { inString = true; i += 1; continue }
            guard b == UInt8(ascii: "-") || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) else { i += 1; continue }
            var j = i + 1
            while j < n, Self.isNumberByte(payload[j]) { j += 1 }
            // The shortest literal beyond a Double's range is 1e309.
            if j - i >= 5 {
                let literal = String(decoding: UnsafeRawBufferPointer(rebasing: payload[i..<j]), as: UTF8.self)
                if let v = Double(literal), v.isInfinite {
                    if copy == nil { copy = Array(payload) }
                    let stand = (b == UInt8(ascii: "-") ? "-1e39" : "1e39").padding(toLength: j - i, withPad: " ", startingAt: 0)
                    copy!.replaceSubrange(i..<j, with: Array(stand.utf8))
                }
            }
            i = j
        }
        return copy
    }

    private static func isNumberByte(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E")
            || b == UInt8(ascii: "+") || b == UInt8(ascii: "-")
    }
}
