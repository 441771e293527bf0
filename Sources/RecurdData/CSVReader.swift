/// Reads a CSV of numeric features (NAB's `timestamp,value` and the like).
///
/// Rules (documented in the README):
/// - Lines end in `\n` (a trailing `\r` is dropped); blank lines are skipped; fields are split on
///   commas and trimmed of spaces and double quotes.
/// - Header: with `columns`, the first row is a header when any chosen field is not a number;
///   without, when some field is not a number but the same field of the next row is.
/// - Feature columns: `columns` (0-based), or else every column whose first data value parses as
///   a number.
/// - Every chosen field of every data row must be a finite number; the error names the line
///   and column.
public enum CSVReader {
    public static func read(_ bytes: [UInt8], columns requested: [Int]? = nil) throws(RecordedStreamError) -> RecordedStream {
        var lines: [(number: Int, fields: [Substring])] = []
        var lineNumber = 0
        // Split bytes, not Characters: Swift treats "\r\n" as one Character.
        for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = rawLine
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
            let text = String(decoding: line, as: UTF8.self)
            lines.append((lineNumber, text.split(separator: ",", omittingEmptySubsequences: false).map(trim)))
        }
        guard !lines.isEmpty else { throw RecordedStreamError("the CSV has no rows") }

        let first = lines[0].fields
        var hasHeader: Bool
        if let requested {
            for c in requested where c < 0 || c >= first.count {
                throw RecordedStreamError("column \(c) does not exist: line \(lines[0].number) has \(first.count) columns (0-based)")
            }
            hasHeader = requested.contains { number(first[$0]) == nil }
        } else if lines.count > 1 {
            let second = lines[1].fields
            hasHeader = first.indices.contains { j in number(first[j]) == nil && j < second.count && number(second[j]) != nil }
        } else {
            hasHeader = first.contains { number($0) == nil }
        }
        let dataStart = hasHeader ? 1 : 0
        guard dataStart < lines.count else { throw RecordedStreamError("the CSV has a header but no data rows") }
        let names: [String]
        let chosen: [Int]
        if let requested {
            chosen = requested
        } else {
            let row = lines[dataStart].fields
            chosen = row.indices.filter { number(row[$0]) != nil }
            guard !chosen.isEmpty else { throw RecordedStreamError("line \(lines[dataStart].number) has no numeric column; pick columns with --columns") }
        }
        names = chosen.map { hasHeader && $0 < first.count ? String(first[$0]) : "column \($0)" }
        var values: [Float] = []
        values.reserveCapacity((lines.count - dataStart) * chosen.count)
        for (number, fields) in lines[dataStart...] {
            for c in chosen {
                guard c < fields.count else { throw RecordedStreamError("line \(number) has \(fields.count) columns; column \(c) is missing") }
                guard let v = Self.number(fields[c]) else {
                    throw RecordedStreamError("line \(number), column \(c): '\(fields[c])' is not a number")
                }
                guard v.isFinite else { throw RecordedStreamError("line \(number), column \(c): '\(fields[c])' is not finite") }
                values.append(v)
            }
        }
        return .features(values: values, width: chosen.count, columns: names)
    }

    /// A number as written in a CSV field, or nil. `nan`/`inf` parse (and are refused later as
    /// not finite) so that the error says what is wrong.
    static func number(_ field: Substring) -> Float? {
        guard !field.isEmpty else { return nil }
        return Float(field)
    }

    private static func trim(_ s: Substring) -> Substring {
        var t = s
        while let c = t.first, c == " " || c == "\"" || c == "\t" { t = t.dropFirst() }
        while let c = t.last, c == " " || c == "\"" || c == "\t" { t = t.dropLast() }
        return t
    }
}

/// Reads text as one step per byte.
public enum TextReader {
    public static func read(_ bytes: [UInt8]) -> RecordedStream { .tokens(bytes.map { Int32($0) }) }
}
