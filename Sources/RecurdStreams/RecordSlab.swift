/// Fixed-size blocks of memory for many slots, in chunks that are allocated as slots are first
/// used and never move, so a slot's pointer stays valid while the slab lives and the slab can
/// grow without copying.
///
/// Chunks come zeroed from `calloc`; large ones are mapped lazily by the kernel, so a slot costs
/// resident memory only once it is written.
final class RecordSlab {
    /// Bytes per slot (a multiple of 16).
    let slotBytes: Int
    static let slotsPerChunk = 1024
    private var chunks: [UnsafeMutableRawPointer?] = []

    init(slotBytes: Int) {
        precondition(slotBytes >= 0)
        self.slotBytes = (slotBytes + 15) & ~15
    }

    deinit { for c in chunks { free(c) } }

    /// The slot's memory, allocating its chunk on first use.
    @inline(__always)
    func pointer(_ slot: Int) -> UnsafeMutableRawPointer {
        let c = slot / Self.slotsPerChunk
        if c >= chunks.count || chunks[c] == nil { allocate(c) }
        return chunks[c]! + (slot % Self.slotsPerChunk) * slotBytes
    }

    /// Zeroes `count` bytes at `p` (inside a slot) without making untouched memory resident: the
    /// whole pages inside are handed back to the kernel, which maps them as zero when next
    /// touched (a text stream's 4 MiB context tables cost memory only as they fill; zeroing them
    /// byte by byte made every new text stream resident at once). Small ranges are cleared.
    static func zero(_ p: UnsafeMutableRawPointer, count: Int) {
        let (start, end) = wholePages(p, count)
        #if os(Linux)
        if count >= 64 * pageSize, end > start,
           madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED) == 0 {
            p.initializeMemory(as: UInt8.self, repeating: 0, count: start - Int(bitPattern: p))
            UnsafeMutableRawPointer(bitPattern: end)!.initializeMemory(as: UInt8.self, repeating: 0, count: Int(bitPattern: p) + count - end)
            return
        }
        #endif
        p.initializeMemory(as: UInt8.self, repeating: 0, count: count)
    }

    /// The kernel's page (4 KiB on x86-64; 16 or 64 KiB on some arm64 kernels): madvise rounds
    /// lengths up to it, so a smaller assumed page would zero past the range.
    static let pageSize: Int = {
        #if os(Linux)
        let n = sysconf(Int32(_SC_PAGESIZE))
        return n > 0 ? n : 4096
        #else
        return Int(getpagesize())
        #endif
    }()

    /// The page-aligned addresses of the whole pages inside `count` bytes at `p` (start ≥ end
    /// when there are none).
    private static func wholePages(_ p: UnsafeMutableRawPointer, _ count: Int) -> (start: Int, end: Int) {
        let page = pageSize, a = Int(bitPattern: p)
        return ((a + page - 1) & ~(page - 1), (a + count) & ~(page - 1))
    }

    private func allocate(_ c: Int) {
        while chunks.count <= c { chunks.append(nil) }
        guard let p = calloc(Self.slotsPerChunk, max(slotBytes, 16)) else { fatalError("out of memory for stream records") }
        #if os(Linux)
        // Large slots (text streams' context tables) fill sparsely: with transparent huge pages
        // one touched byte would make 2 MiB resident.
        if slotBytes >= 1 << 20 {
            let (start, end) = Self.wholePages(p, Self.slotsPerChunk * slotBytes)
            if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_NOHUGEPAGE) }
        }
        #endif
        chunks[c] = p
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
