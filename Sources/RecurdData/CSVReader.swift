#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a CSV of numeric features (NAB's `timestamp,value` and the like), straight from the
/// file's bytes: lines and fields are byte ranges, numbers are parsed in place (no `String` per
/// line or field, which is most of `recurd run`'s time otherwise).
///
/// Rules (documented in the README):
/// - Lines end in `\n` (a trailing `\r` is dropped); blank lines are skipped; fields are split on
///   commas and trimmed of spaces, tabs and double quotes.
/// - Header: with `columns`, the first row is a header when any chosen field is not a number;
///   without, when some field is not a number but the same field of the next row is.
/// - Feature columns: `columns` (0-based), or else every column whose first data value parses as
///   a number.
/// - Every data row has as many fields as the first data row; every chosen field of every data
///   row must be a finite number (within float32's range); the error names the line and column.
/// - A UTF-8 byte-order mark at the start is skipped.
public enum CSVReader {
    /// A line's fields as byte ranges (trimmed).
    struct Line {
        let number: Int
        var fields: [Range<Int>] = []
    }

    public static func read(_ bytes: [UInt8], columns requested: [Int]? = nil) throws(RecordedStreamError) -> RecordedStream {
        let result: Result<RecordedStream, RecordedStreamError> = bytes.withUnsafeBufferPointer { b in
            Result { () throws(RecordedStreamError) in try read(b, columns: requested) }
        }
        return try result.get()
    }

    static func read(_ b: UnsafeBufferPointer<UInt8>, columns requested: [Int]?) throws(RecordedStreamError) -> RecordedStream {
        var lines: [Line] = []
        var lineNumber = 0
        let n = b.count
        // A UTF-8 byte-order mark (spreadsheet exports) is not part of the first field.
        var start = ByteOrderMark.length(b)
        while start <= n {
            var end = start
            while end < n && b[end] != UInt8(ascii: "\n") { end += 1 }
            lineNumber += 1
            var stop = end
            if stop > start && b[stop - 1] == UInt8(ascii: "\r") { stop -= 1 }
            var blank = true
            for i in start..<stop where b[i] != UInt8(ascii: " ") && b[i] != UInt8(ascii: "\t") { blank = false; break }
            if !blank {
                var line = Line(number: lineNumber)
                var f = start
                for i in start...stop where i == stop || b[i] == UInt8(ascii: ",") {
                    line.fields.append(trim(b, f..<i))
                    f = i + 1
                }
                lines.append(line)
            }
            if end == n { break }
            start = end + 1
        }
        guard !lines.isEmpty else { throw RecordedStreamError("the CSV has no rows") }

        func text(_ r: Range<Int>) -> String { String(decoding: UnsafeBufferPointer(rebasing: b[r]), as: UTF8.self) }
        let first = lines[0].fields
        var hasHeader: Bool
        if let requested {
            for c in requested where c < 0 || c >= first.count {
                throw RecordedStreamError("column \(c) does not exist: line \(lines[0].number) has \(first.count) columns (0-based)")
            }
            hasHeader = requested.contains { number(b, first[$0]) == nil }
        } else if lines.count > 1 {
            let second = lines[1].fields
            hasHeader = first.indices.contains { j in number(b, first[j]) == nil && j < second.count && number(b, second[j]) != nil }
        } else {
            hasHeader = first.contains { number(b, $0) == nil }
        }
        let dataStart = hasHeader ? 1 : 0
        guard dataStart < lines.count else { throw RecordedStreamError("the CSV has a header but no data rows") }
        let chosen: [Int]
        if let requested {
            chosen = requested
        } else {
            let row = lines[dataStart].fields
            chosen = row.indices.filter { number(b, row[$0]) != nil }
            guard !chosen.isEmpty else { throw RecordedStreamError("line \(lines[dataStart].number) has no numeric column; pick columns with --columns") }
        }
        let names = chosen.map { hasHeader && $0 < first.count ? text(first[$0]) : "column \($0)" }
        var values: [Float] = []
        values.reserveCapacity((lines.count - dataStart) * chosen.count)
        let width = lines[dataStart].fields.count
        // Every data row has `width` fields (checked below), so a chosen column beyond it is
        // missing from all of them: said once, for the first.
        if let c = chosen.first(where: { $0 >= width }) {
            throw RecordedStreamError("line \(lines[dataStart].number) has \(width) columns; column \(c) is missing")
        }
        for line in lines[dataStart...] {
            // A row of another width is a broken file (a stray comma, a lost field): its values
            // would be read from the wrong columns or silently left out.
            guard line.fields.count == width else {
                throw RecordedStreamError("line \(line.number) has \(line.fields.count) column\(line.fields.count == 1 ? "" : "s"); "
                    + "line \(lines[dataStart].number), the first data row, has \(width)")
            }
            for c in chosen {
                guard let v = number(b, line.fields[c]) else {
                    throw RecordedStreamError("line \(line.number), column \(c): '\(text(line.fields[c]))' is not a number")
                }
                guard v.isFinite else {
                    let written = text(line.fields[c])
                    let why = Double(written)?.isFinite == true ? "is outside float32's range (±3.4e38)" : "is not finite"
                    throw RecordedStreamError("line \(line.number), column \(c): '\(written)' \(why)")
                }
                values.append(v)
            }
        }
        return .features(values: values, width: chosen.count, columns: names)
    }

    /// A number as written in a CSV field, or nil. `nan`/`inf` parse (and are refused later as
    /// not finite) so that the error says what is wrong.
    @inline(__always)
    static func number(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Float? {
        let length = r.count
        guard length > 0, length < 64 else { return nil }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer -> Float? in
            for i in 0..<length { buffer[i] = CChar(bitPattern: b[r.lowerBound + i]) }
            buffer[length] = 0
            var end: UnsafeMutablePointer<CChar>?
            let v = strtof(buffer.baseAddress!, &end)
            guard let end, end - buffer.baseAddress! == length else { return nil }
            // strtof takes hexadecimal too; a CSV number is decimal.
            if length > 1 && (buffer[1] == CChar(UInt8(ascii: "x")) || buffer[1] == CChar(UInt8(ascii: "X")) || (length > 2 && (buffer[2] == CChar(UInt8(ascii: "x")) || buffer[2] == CChar(UInt8(ascii: "X"))))) {
                return nil
            }
            return v
        }
    }

    /// A number as written in a field (tests and headers).
    static func number(_ field: Substring) -> Float? {
        let bytes = Array(field.utf8)
        return bytes.withUnsafeBufferPointer { number($0, 0..<bytes.count) }
    }

    private static func trim(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Range<Int> {
        var lo = r.lowerBound, hi = r.upperBound
        func skip(_ c: UInt8) -> Bool { c == UInt8(ascii: " ") || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\t") }
        while lo < hi && skip(b[lo]) { lo += 1 }
        while hi > lo && skip(b[hi - 1]) { hi -= 1 }
        return lo..<hi
    }
}

/// A UTF-8 byte-order mark, which spreadsheets and editors put at the start of text files.
enum ByteOrderMark {
    /// 3 when `b` starts with one, else 0.
    static func length(_ b: UnsafeBufferPointer<UInt8>) -> Int {
        b.count >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF ? 3 : 0
    }
}

/// Reads text as one step per byte.
public enum TextReader {
    public static func read(_ bytes: [UInt8]) -> RecordedStream { .tokens(bytes.map { Int32($0) }) }
}
