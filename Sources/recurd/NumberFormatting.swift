import Foundation

/// Float formatting for `recurd run`'s output: the shortest decimal that reads back as the same
/// float (Swift's own, allocation-free for these lengths), rather than `%.9g` through varargs,
/// which took most of `run`'s time.
enum NumberFormatting {
    /// Appends `value`, exactly, to `out`.
    @inline(__always)
    static func append(_ value: Float, to out: inout [UInt8]) {
        var text = value.description
        text.withUTF8 { out.append(contentsOf: $0) }
    }

    /// A line of comma-separated values.
    static func appendLine(_ values: UnsafePointer<Float>, count: Int, to out: inout [UInt8]) {
        for j in 0..<count {
            if j > 0 { out.append(UInt8(ascii: ",")) }
            append(values[j], to: &out)
        }
        out.append(UInt8(ascii: "\n"))
    }
}

/// `%.6g`, for human-readable summaries.
func format6(_ x: Double) -> String { String(format: "%.6g", x) }
