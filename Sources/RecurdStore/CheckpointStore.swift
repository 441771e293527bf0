import Foundation
import RecurdModelFile
import SafeTensors

/// Model checkpoints in `<state-dir>/checkpoints` (DESIGN §6): safetensors files with the weights,
/// the optimiser's moments and step, the model version (`recurd.version`) and a CRC-32C of the
/// tensor data (`recurd.checksum`).
///
/// A checkpoint is written to a temporary file, fsynced, renamed into place and the directory
/// fsynced, so a crash leaves either the old set or the new one, never a torn file. The newest
/// `keep` are kept; `<state-dir>/model.safetensors` is a symbolic link to the newest.
public final class CheckpointStore {
    public let stateDirectory: String
    public let directory: String
    public let keep: Int

    public static let checksumKey = "recurd.checksum"
    public static let versionKey = "recurd.version"

    public init(stateDirectory: String, keep: Int = 3) {
        self.stateDirectory = stateDirectory
        directory = (stateDirectory as NSString).appendingPathComponent("checkpoints")
        self.keep = keep
    }

    /// The link to the newest checkpoint.
    public var latestLink: String { (stateDirectory as NSString).appendingPathComponent("model.safetensors") }

    /// Checkpoint files, newest first (by version, then by time written).
    public func candidates() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let parsed: [(name: String, version: UInt64, stamp: UInt64)] = names.compactMap { name in
            guard name.hasPrefix("model-"), name.hasSuffix(".safetensors") else { return nil }
            let parts = name.dropFirst(6).dropLast(12).split(separator: "-")
            guard parts.count == 2, let v = UInt64(parts[0]), let t = UInt64(parts[1]) else { return nil }
            return (name, v, t)
        }
        return parsed.sorted { ($0.version, $0.stamp) > ($1.version, $1.stamp) }.map { (directory as NSString).appendingPathComponent($0.name) }
    }

    /// The newest checkpoint that reads back whole; each one skipped is reported with why.
    public func loadNewest(skipped: (String, String) -> Void) -> (file: ModelFile, info: CheckpointInfo)? {
        // A checkpoint being written when the process died leaves its temporary file (as large
        // as the model); at start nothing else can be writing one (the state directory's lock).
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix(".tmp-model-") {
            unlink((directory as NSString).appendingPathComponent(name))
        }
        for path in candidates() {
            do {
                let (file, bytes) = try Self.read(path)
                let version = file.metadata[Self.versionKey].flatMap(UInt64.init) ?? 0
                return (file, CheckpointInfo(path: path, version: version, bytes: bytes))
            } catch {
                skipped(path, "\(error)")
            }
        }
        return nil
    }

    /// Metadata that belongs to one checkpoint's weights, not to a model derived from them (a
    /// writer that copies a checkpoint's metadata onto other weights leaves these out).
    public static let checkpointOnlyKeys: Set<String> = [checksumKey, versionKey]

    /// Checks a model file's `recurd.checksum` when it has one (a checkpoint, or a copy of one
    /// given as `--model` or reloaded): a damaged copy is refused rather than served.
    public static func verifyRecordedChecksum(_ bytes: [UInt8], path: String) throws(CheckpointError) {
        guard let archive = try? SafeTensorsArchive(bytes: bytes), let stored = archive.metadata[checksumKey] else { return }
        try verify(bytes, archive, recorded: stored, path: path)
    }

    private static func verify(_ bytes: [UInt8], _ archive: SafeTensorsArchive, recorded stored: String, path: String) throws(CheckpointError) {
        let actual = CRC32C.checksum(bytes[archive.dataStart...])
        guard UInt32(stored, radix: 16) == actual else {
            // The checksum covers the data bytes as recurd wrote them: damage, or a re-save by
            // another tool (another tensor order, other weights) with the checkpoint's metadata.
            throw CheckpointError("\(path): checksum \(String(actual, radix: 16)) does not match the recorded \(stored): the file is damaged, "
                                  + "or was re-written since recurd wrote it (a model made from a checkpoint must leave out its metadata's "
                                  + "\(checksumKey) and \(versionKey))")
        }
    }

    /// Reads and verifies one checkpoint.
    public static func read(_ path: String) throws -> (ModelFile, Int) {
        guard let data = FileManager.default.contents(atPath: path) else { throw CheckpointError("\(path): cannot read") }
        let bytes = [UInt8](data)
        let archive: SafeTensorsArchive
        do { archive = try SafeTensorsArchive(bytes: bytes) } catch { throw CheckpointError("\(path): \(error)") }
        guard let stored = archive.metadata[checksumKey], UInt32(stored, radix: 16) != nil else {
            throw CheckpointError("\(path): no \(checksumKey) in the metadata")
        }
        try verify(bytes, archive, recorded: stored, path: path)
        do { return (try ModelFile.decode(bytes, file: path), bytes.count) } catch { throw CheckpointError(error.description) }
    }

    /// Writes `file` as the checkpoint of model version `version`; keeps the newest `keep`.
    @discardableResult
    public func write(_ file: ModelFile, version: UInt64) throws -> CheckpointInfo {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var metadata = file.metadata
        metadata[Self.versionKey] = "\(version)"
        metadata[Self.checksumKey] = "00000000"
        // The tensor data does not depend on the metadata: checksum it from a first encoding.
        let first = ModelFile(model: file.model, metadata: metadata, extras: file.extras).encode()
        let dataStart = 8 + Int(first.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        metadata[Self.checksumKey] = String(format: "%08x", CRC32C.checksum(first[dataStart...]))
        let bytes = ModelFile(model: file.model, metadata: metadata, extras: file.extras).encode()
        let stamp = UInt64(Date().timeIntervalSince1970 * 1000)
        let name = String(format: "model-%020llu-%llu.safetensors", version, stamp)
        let path = (directory as NSString).appendingPathComponent(name)
        try DurableFile.write(bytes, to: path)
        try updateLatestLink(to: "checkpoints/\(name)")
        prune()
        return CheckpointInfo(path: path, version: version, bytes: bytes.count)
    }

    /// Whether `latestLink` is a file recurd did not make (not a symbolic link): an operator's
    /// model put there, which the next checkpoint would replace.
    public var latestLinkIsForeign: Bool {
        var st = stat()
        return lstat(latestLink, &st) == 0 && (st.st_mode & S_IFMT) != S_IFLNK
    }

    private func updateLatestLink(to target: String) throws {
        guard !latestLinkIsForeign else {
            throw CheckpointError("\(latestLink) is a file, not recurd's link to the newest checkpoint: not replaced (move it out of the state directory)")
        }
        let temporary = latestLink + ".tmp"
        unlink(temporary)
        guard symlink(target, temporary) == 0 else { throw CheckpointError("\(temporary): \(String(cString: strerror(errno)))") }
        guard rename(temporary, latestLink) == 0 else {
            let e = errno
            unlink(temporary)
            throw CheckpointError("\(latestLink): \(String(cString: strerror(e)))")
        }
        DurableFile.syncDirectory(stateDirectory)
    }

    private func prune() {
        for path in candidates().dropFirst(keep) { unlink(path) }
    }

    /// Moves every checkpoint and `extra` files of the state directory aside into
    /// `<state-dir>/retired-<time>/` (`--reset-model`); returns that folder.
    public func retire(alsoMoving extra: [String]) throws -> String {
        let stamp = Int(Date().timeIntervalSince1970)
        let fm = FileManager.default
        // Two resets within a second must not share a folder (the second's moves would fail).
        var target = (stateDirectory as NSString).appendingPathComponent("retired-\(stamp)")
        var n = 1
        while fm.fileExists(atPath: target) {
            target = (stateDirectory as NSString).appendingPathComponent("retired-\(stamp)-\(n)")
            n += 1
        }
        try fm.createDirectory(atPath: target, withIntermediateDirectories: false)
        if fm.fileExists(atPath: directory) { try fm.moveItem(atPath: directory, toPath: (target as NSString).appendingPathComponent("checkpoints")) }
        for path in extra where fm.fileExists(atPath: path) {
            try fm.moveItem(atPath: path, toPath: (target as NSString).appendingPathComponent((path as NSString).lastPathComponent))
        }
        unlink(latestLink)
        DurableFile.syncDirectory(stateDirectory)
        return target
    }
}
