import Foundation

/// `--state-dir`: the stream store (`streams.sqlite`), the model checkpoints
/// (`checkpoints/`, `model.safetensors`) and a lock that keeps a second daemon out.
public final class StateDirectory {
    public let path: String
    private var lockDescriptor: Int32 = -1
    private var directoryDescriptor: Int32 = -1
    /// Why the directory itself could not be locked (only the lock file is), or nil.
    public private(set) var directoryLockProblem: String?

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
        // The directory itself is locked too: deleting the lock file would otherwise let a second
        // daemon take a new one and write the same store and checkpoints.
        let dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else {
            close(fd)
            throw CheckpointError("state directory \(path): \(String(cString: strerror(errno)))")
        }
        if flock(dfd, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            guard e != EWOULDBLOCK else {
                close(dfd)
                close(fd)
                throw CheckpointError("\(path) is in use by another recurd (the directory is locked); give each daemon its own --state-dir")
            }
            // Some filesystems cannot lock a directory (NFS emulates flock with write locks, which
            // need a file open for writing): the lock file alone keeps a second daemon out there.
            directoryLockProblem = String(cString: strerror(e))
        }
        directoryDescriptor = dfd
    }

    deinit {
        if directoryDescriptor >= 0 { close(directoryDescriptor) }
        if lockDescriptor >= 0 { close(lockDescriptor) }
    }

    /// What is wrong if the directory opened at start is no longer at `path`, or its stream store
    /// is gone from it (deleted or moved while running: what is written from then on would not
    /// be found by the next start); nil when all is in place.
    public func problem() -> String? {
        var opened = stat()
        var now = stat()
        guard fstat(directoryDescriptor, &opened) == 0 else { return nil }
        guard stat(path, &now) == 0 else {
            return "the state directory \(path) is gone (\(String(cString: strerror(errno))))"
        }
        if now.st_dev != opened.st_dev || now.st_ino != opened.st_ino {
            return "the state directory \(path) was replaced by another directory"
        }
        if access(storePath, F_OK) != 0 { return "the stream store \(storePath) is gone" }
        return nil
    }

    /// Whether `file` lies inside this directory.
    public func contains(_ file: String) -> Bool {
        let dir = URL(fileURLWithPath: path).standardizedFileURL.path
        let f = URL(fileURLWithPath: file).standardizedFileURL.path
        return f.hasPrefix(dir.hasSuffix("/") ? dir : dir + "/")
    }
}
