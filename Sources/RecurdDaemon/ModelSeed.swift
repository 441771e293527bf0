import Foundation
import RecurdModelFile
import RecurdStore

/// Names the model file a state directory started from, so that a restart with another
/// `--model` of the same shape (whose weights the newest checkpoint silently wins over) is told.
/// The weights' CRC-32C: the same file converted again gives the same fingerprint.
enum ModelSeed {
    /// The checkpoint metadata key.
    static let key = "recurd.seed"
    /// The seed of a model created from the first stream (no `--model` file).
    static let created = "created"
    /// The seed of a model started from the bundled pre-trained text model.
    static let pretrained = "pretrained-text"

    /// The fingerprint of `file`'s weights, "crc32c:" and eight hex digits.
    static func fingerprint(_ file: ModelFile) -> String {
        let w = file.model.weights
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: w.pointer, count: w.count * MemoryLayout<Float>.stride))
        return "crc32c:" + String(format: "%08x", crc)
    }
}
