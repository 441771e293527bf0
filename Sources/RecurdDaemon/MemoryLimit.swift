import Foundation

/// The memory this process may use: its cgroup's `memory.max` (systemd's `MemoryMax=`, cgroup v2)
/// when one is set, else the machine's physical memory.
public enum MemoryLimit {
    /// The limit in bytes, and what it is (for messages).
    public static func current() -> (bytes: UInt64, source: String) {
        if let own = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8),
           let line = own.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) {
            let file = "/sys/fs/cgroup" + line.dropFirst(3) + "/memory.max"
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
               let limit = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return (limit, "its cgroup's memory.max (MemoryMax=)")
            }
        }
        return (ProcessInfo.processInfo.physicalMemory, "the machine's memory")
    }
}
