import Foundation
import RecurdModelFile
import RecurdNumerics
@testable import RecurdStore
import RecurdTestSupport
import Testing

/// The store on disk: stream records in SQLite, model checkpoints as checksummed files.
@Suite struct StoreTests {
    /// This test's own directory, removed after it (Swift Testing makes a suite instance per test).
    let scratch = ScratchDirectory()
    var dir: URL { scratch.url }

    @Test func recordsWriteLoadDeleteTrimAndReopen() throws {
        let path = dir.appendingPathComponent("s.sqlite").path
        var rng = SeededGenerator(seed: 1)
        let records = (0..<50).map { i in (Array("k\(i)".utf8), (0..<(100 + i * 37)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 7) }) }
        do {
            let store = try StreamStore(path: path)
            try store.write(records.map { ($0.0, $0.0.count, $0.1) })
            #expect(store.count == 50)
            #expect(try store.load(Array("k7".utf8)) == records[7].1)
            #expect(try store.load(Array("nope".utf8)) == nil)
            // Rewriting a key replaces it, and makes it the most recently written.
            try store.write([(Array("k0".utf8), 2, [1, 2, 3])])
            #expect(store.count == 50)
            #expect(try store.load(Array("k0".utf8)) == [1, 2, 3])
            #expect(try store.delete([Array("k1".utf8), Array("absent".utf8)]) == 1)
            #expect(store.count == 49)
            // The least recently written go first: k2, k3, … (k0 was rewritten, k1 deleted).
            #expect(try store.trim(to: 46) == [Array("k2".utf8), Array("k3".utf8), Array("k4".utf8)])
        }
        let reopened = try StreamStore(path: path)
        #expect(reopened.count == 46)
        #expect(try reopened.load(Array("k0".utf8)) == [1, 2, 3])
        #expect(try reopened.load(Array("k49".utf8)) == records[49].1)
        var keys = 0
        try reopened.forEachKey { _ in keys += 1 }
        #expect(keys == 46)
    }

    @Test func compressionRoundTripsAndShrinksFloats() {
        var rng = SeededGenerator(seed: 3)
        let floats = (0..<700).map { _ in Float(rng.nextUnit() * 2 - 1) * 0.7 }
        let bytes = floats.withUnsafeBytes { Array($0) } + [1, 2, 3]
        let (encoding, stored) = RecordCompression.compress(bytes)
        #expect(encoding == .shuffledDeflate && stored.count < bytes.count, "\(stored.count) of \(bytes.count)")
        #expect(stored.withUnsafeBytes { RecordCompression.decompress($0, encoding: encoding) } == bytes)
        let noise = (0..<64).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let (e2, s2) = RecordCompression.compress(noise)
        #expect(e2 == .raw && s2 == noise)
        #expect(Array(stored.prefix(10)).withUnsafeBytes { RecordCompression.decompress($0, encoding: .shuffledDeflate) } == nil)
    }

    /// A record past 64 MiB (a text stream with a large context model) reads back; a damaged
    /// length beyond what deflate could give from the stored bytes is refused before allocating.
    @Test func largeRecordsRoundTripAndAbsurdLengthsAreRefused() {
        var big = [UInt8](repeating: 0, count: 70 << 20)
        big[12345] = 7
        let (encoding, stored) = RecordCompression.compress(big)
        #expect(encoding == .shuffledDeflate)
        #expect(stored.withUnsafeBytes { RecordCompression.decompress($0, encoding: encoding) } == big)
        var damaged = Array(stored.prefix(64))
        withUnsafeBytes(of: UInt32.max.littleEndian) { for i in 0..<4 { damaged[i] = $0[i] } }
        #expect(damaged.withUnsafeBytes { RecordCompression.decompress($0, encoding: .shuffledDeflate) } == nil)
    }

    func model(seed: UInt64) -> ModelFile {
        ModelFile(model: Model(architecture: ModelArchitecture(cell: .gru, input: .features(size: 2), hidden: [5], outputSize: 2, head: .linear), seed: seed))
    }

    /// Two resets within the same second each set their state aside in a folder of their own.
    @Test func retiringTwiceInOneSecondKeepsBoth() throws {
        let store = CheckpointStore(stateDirectory: dir.path)
        try store.write(model(seed: 1), version: 1)
        let first = try store.retire(alsoMoving: [])
        try store.write(model(seed: 2), version: 2)
        let second = try store.retire(alsoMoving: [])
        #expect(first != second)
        #expect(store.candidates().isEmpty)
        for folder in [first, second] {
            #expect(try FileManager.default.contentsOfDirectory(atPath: folder + "/checkpoints").count == 1)
        }
    }

    @Test func checkpointsAreChecksummedKeptThreeAndTheNewestValidWins() throws {
        let store = CheckpointStore(stateDirectory: dir.path)
        for v in [3, 5, 9, 12] { try store.write(model(seed: UInt64(v)), version: UInt64(v)) }
        #expect(store.candidates().count == 3)
        // A write cut short by a crash leaves its temporary file: gone at the next start.
        let leftover = dir.appendingPathComponent("checkpoints/.tmp-model-00000000000000000013-1.safetensors").path
        #expect(FileManager.default.createFile(atPath: leftover, contents: Data(repeating: 7, count: 1000)))
        var skipped: [String] = []
        let newest = try #require(store.loadNewest { path, _ in skipped.append(path) })
        #expect(!FileManager.default.fileExists(atPath: leftover))
        #expect(newest.info.version == 12 && skipped.isEmpty)
        #expect(newest.file.model.weights.array == model(seed: 12).model.weights.array)
        // The link points at the newest.
        #expect(try CheckpointStore.read(store.latestLink).0.metadata["recurd.version"] == "12")
        // Damage the newest: it is skipped (and named), the one before wins.
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: store.candidates()[0])))
        bytes[bytes.count - 5] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: store.candidates()[0]))
        let fallback = try #require(store.loadNewest { path, why in skipped.append("\(path): \(why)") })
        #expect(fallback.info.version == 9)
        #expect(skipped.count == 1 && skipped[0].contains("checksum"), "\(skipped)")
        // Truncated too.
        try Data(bytes.prefix(100)).write(to: URL(fileURLWithPath: store.candidates()[0]))
        #expect(store.loadNewest { _, _ in }?.info.version == 9)
    }

    @Test func stateDirectoryIsLocked() throws {
        let first = try StateDirectory(path: dir.appendingPathComponent("state").path)
        #expect(throws: (any Error).self) { _ = try StateDirectory(path: dir.appendingPathComponent("state").path) }
        #expect(first.contains(dir.appendingPathComponent("state/model.safetensors").path))
        #expect(!first.contains(dir.appendingPathComponent("elsewhere/model.safetensors").path))
    }
}
