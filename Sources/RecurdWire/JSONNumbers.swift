import Foundation

/// Reading numbers out of JSONSerialization's `Any` exactly: shared by the input and output
/// decoders.
public enum JSONNumbers {
    /// JSONSerialization gives NSNumber for both numbers and booleans; tell them apart.
    public static func isBool(_ v: Any) -> Bool {
        guard let n = v as? NSNumber else { return false }
        return String(cString: n.objCType) == "c" || type(of: n) == type(of: NSNumber(value: true))
    }

    static func number(_ v: Any) -> Double? {
        guard let n = v as? NSNumber, !isBool(v) else { return nil }
        return n.doubleValue
    }

    /// An integral JSON number, read exactly (not through a double, which rounds above 2⁵³:
    /// nanosecond timestamps and large seqs would come back changed).
    static func integer(_ v: Any) -> Int64? {
        guard let n = v as? NSNumber, !isBool(v) else { return nil }
        switch String(cString: n.objCType) {
        case "d", "f":
            let d = n.doubleValue
            guard d.rounded() == d, d >= -0x1p63, d < 0x1p63 else { return nil }
            return Int64(d)
        case "Q":
            return n.uint64Value <= UInt64(Int64.max) ? Int64(n.uint64Value) : nil
        default:
            return n.int64Value
        }
    }

    /// A non-negative integral JSON number up to 2⁶⁴ − 1 (seq).
    static func unsignedInteger(_ v: Any) -> UInt64? {
        guard let n = v as? NSNumber, !isBool(v) else { return nil }
        if String(cString: n.objCType) == "Q" { return n.uint64Value }
        guard let i = integer(v), i >= 0 else { return nil }
        return UInt64(i)
    }
}
