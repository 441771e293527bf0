import Foundation

/// `%.9g` formatting without Foundation's `String(format:)` overhead (it dominates `recurd run`
/// output otherwise).
enum NumberFormatting {
    /// Appends `value` with 9 significant digits to `out`.
    static func append(_ value: Float, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 32) { buffer in
            let n = withVaList([Double(value)]) { vsnprintf(buffer.baseAddress!, 32, "%.9g", $0) }
            buffer.withMemoryRebound(to: UInt8.self) { out.append(contentsOf: $0[0..<Int(n)]) }
        }
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
