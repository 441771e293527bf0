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
}
