import Foundation

/// The systemd notification protocol (`Type=notify`): datagrams to `$NOTIFY_SOCKET` —
/// `READY=1` once serving, `STATUS=…` as it runs, `WATCHDOG=1` while the serving loop turns,
/// `STOPPING=1` at shutdown. Does nothing when not started by systemd.
final class SystemdNotifier: Sendable {
    private let path: String?
    /// Half the watchdog interval systemd asked for (`$WATCHDOG_USEC`), if any.
    let watchdogInterval: Duration?

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        path = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        if let usec = environment["WATCHDOG_USEC"].flatMap(UInt64.init), usec > 0,
           environment["WATCHDOG_PID"].flatMap(Int32.init).map({ $0 == getpid() }) ?? true {
            // At least 10 ms: a tiny or mistyped WATCHDOG_USEC must not turn the pings into a busy loop.
            watchdogInterval = .microseconds(Int64(max(usec / 2, 10_000)))
        } else {
            watchdogInterval = nil
        }
    }

    var enabled: Bool { path != nil }

    /// Sends `state` (e.g. `READY=1`); failures are ignored, as sd_notify(3) does.
    func notify(_ state: String) {
        guard let path else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        // A leading '@' names an abstract socket: its first byte is NUL.
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        _ = state.withCString { message in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, message, strlen(message), 0, $0, length) }
            }
        }
    }
}
