import Foundation

/// Monotonic time for latencies and timeouts.
enum Clock {
    @inline(__always) static var nanoseconds: UInt64 { DispatchTime.now().uptimeNanoseconds }
    @inline(__always) static var seconds: Double { Double(nanoseconds) / 1e9 }
}
