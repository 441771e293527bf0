import Foundation

/// Whole-file reads and atomic writes for the command-line tools.
enum FileIO {
    /// The whole file, or an error naming it and the system's reason. Read with read(2), so that
    /// pipes and devices (`/dev/stdin`, a FIFO) work as files do.
    static func read(_ path: String, what: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT { throw CLIError("\(path): no such \(what) file") }
            throw CLIError("\(path): cannot read the \(what) (\(String(cString: strerror(e))))")
        }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
            throw CLIError("\(path): cannot read the \(what) (it is a directory)")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(max(0, Int(info.st_size)))
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                throw CLIError("\(path): cannot read the \(what) (\(String(cString: strerror(errno))))")
            }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }

    /// Writes via a temporary file and rename, so a reader never sees a half-written file.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        do {
            try Data(bytes).write(to: url, options: .atomic)
        } catch {
            throw CLIError("\(path): cannot write: \(error.localizedDescription)")
        }
    }

    /// Writes a secret: a new temporary file opened 0600 (O_EXCL, O_NOFOLLOW), so that no other
    /// user can open it at any moment, written, synced, then renamed over `path` (a symlink there
    /// is replaced, not followed).
    static func writeSecret(_ bytes: [UInt8], to path: String) throws {
        let tmp = "\(path).tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CLIError("\(tmp): cannot create (\(String(cString: strerror(errno))))") }
        var ok = true
        var done = 0
        while ok && done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { ok = false } else { done += n }
        }
        let reason = String(cString: strerror(errno))
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, path) == 0 else {
            unlink(tmp)
            throw CLIError("\(path): cannot write (\(ok ? String(cString: strerror(errno)) : reason))")
        }
    }
}
