import Foundation

/// `--state-dir`: the stream store (`streams.sqlite`), the model checkpoints
/// (`checkpoints/`, `model.safetensors`) and a lock that keeps a second daemon out.
public final class StateDirectory {
    public let path: String
    private var lockDescriptor: Int32 = -1

    public var storePath: String { (path as NSString).appendingPathComponent("streams.sqlite") }
    public var storeFiles: [String] { [storePath, storePath + "-wal", storePath + "-shm"] }
    public var checkpoints: CheckpointStore { CheckpointStore(stateDirectory: path) }

    /// Creates the directory if needed and takes its lock.
    public init(path: String) throws {
        self.path = path
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw CheckpointError("state directory \(path): \(error.localizedDescription)")
        }
        let lock = (path as NSString).appendingPathComponent("lock")
        let fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CheckpointError("\(lock): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw CheckpointError("\(path) is in use by another recurd (\(lock) is locked); give each daemon its own --state-dir")
        }
        lockDescriptor = fd
    }

    deinit { if lockDescriptor >= 0 { close(lockDescriptor) } }

    /// Whether `file` lies inside this directory.
    public func contains(_ file: String) -> Bool {
        let dir = URL(fileURLWithPath: path).standardizedFileURL.path
        let f = URL(fileURLWithPath: file).standardizedFileURL.path
        return f.hasPrefix(dir.hasSuffix("/") ? dir : dir + "/")
    }
}
