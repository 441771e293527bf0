/// A per-stream byte-context model that sharpens a text stream's next-byte distribution, in the
/// manner of PPM: counts of what followed each of the last 0…`orders` bytes' contexts, blended
/// from the shortest context up by hierarchical Pitman–Yor smoothing (discount 0.75,
/// concentration 0.5) over a uniform base, with Kneser–Ney's update exclusion; then an online
/// two-expert Bayesian mixture (log-odds clamped to ±8, so either can win back) weighs those
/// counts against the network's own distribution, so the published distribution is never much
/// worse than the better of the two. The network generalises across the stream's history and
/// (pre-trained) from other text; the counts remember this stream's exact phrases at once.
///
/// Pure arithmetic over caller-owned memory (a stream record's section): no allocation, no I/O.
/// `Tests/Fixtures/text/context_ref.py` is an independent implementation of the same rule; the
/// tests compare the two step by step.
///
/// Memory, `bytes(buckets:)`:
///
/// ```
/// header      0  history (u64: the last 8 bytes, newest lowest)   8  bytes seen (u64)
///            16  log-odds of the counts over the network (f64)
///            24  order 0's total count (u64)   32  order 0's distinct bytes (u64)
///            40  the network's distribution below is the last published one (u32)   44…63 reserved
/// order 0    64  256 × u32 counts
/// order 1  1088  256 × 256 × u16 counts (row: the previous byte)
///        132160  256 × (u32 total, u32 distinct): each row's totals
///        134208  the network's last published distribution (256 × f32)
/// orders 2…  135232  `buckets` buckets of 32 bytes, probed in pairs:
///                check (u32, 0 = empty), symbols (14 × u8), counts (14 × u8)
/// ```
///
/// A context of order k+1 gets a bucket only once its order-k context has one, so the table
/// grows by about one context per byte rather than one per order.
public enum TextContextModel {
    /// Longest context, in bytes.
    public static let orders = 8
    /// Pitman–Yor discount and concentration.
    public static let discount = 0.75
    public static let concentration = 0.5
    /// Symbols kept per hashed context; the least counted gives way.
    public static let symbolsPerBucket = 14
    static let order0Offset = 64
    static let order1Offset = 64 + 1024
    static let rowTotalsOffset = 64 + 1024 + 256 * 256 * 2
    static let networkOffset = rowTotalsOffset + 256 * 8
    static let fixedBytes = networkOffset + 256 * 4
    static let bucketBytes = 32
    /// The mixture's log-odds stay within ±`maxLogOdds`, so either expert can win back.
    static let maxLogOdds = 8.0

    /// Bytes of a model with `buckets` buckets (even, at least 2).
    public static func bytes(buckets: Int) -> Int { fixedBytes + buckets * bucketBytes }

    /// Buckets that fit in `bytes` (even; 0 when fewer than 2 fit).
    public static func buckets(fitting bytes: Int) -> Int {
        let n = ((bytes - fixedBytes) / bucketBytes) & ~1
        return n >= 2 ? n : 0
    }

    /// The published distribution: the counts' and the network's (`base`, probabilities over
    /// 256 bytes) mixed, written to `out` (256 floats, summing to 1).
    public static func distribution(_ m: UnsafeMutableRawPointer, buckets: Int, base: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let history = m.load(as: UInt64.self), seen = m.load(fromByteOffset: 8, as: UInt64.self)
        out.update(repeating: 1.0 / 256, count: 256)
        let (n0, u0) = order0Totals(m)
        smoothDense(out, counts: UnsafePointer((m + order0Offset).assumingMemoryBound(to: UInt32.self)), n: n0, u: u0)
        if seen >= 1 {
            let (n, u) = rowTotals(m, history)
            smoothDense(out, counts: order1Row(m, history), n: n, u: u)
        }
        for k in 2...orders where UInt64(k) <= seen {
            guard let b = find(m, buckets: buckets, hash: contextHash(history, order: k)) else { continue }
            let (n, u) = totals(b)
            if n == 0 { continue }
            // Dense escape, then the few counted symbols.
            let (inverse, escape) = smoothing(n: n, u: u)
            let scale = Float(escape)
            for s in 0..<256 { out[s] *= scale }
            let symbols = symbols(b), counts = counts(b)
            for i in 0..<symbolsPerBucket where counts[i] > 0 {
                out[Int(symbols[i])] += Float((Double(counts[i]) - discount) * inverse)
            }
        }
        let w = Float(weight(m))
        var total: Float = 0
        for s in 0..<256 {
            let p = w * out[s] + (1 - w) * base[s]
            out[s] = p
            total += p
        }
        let normaliser = 1 / total
        for s in 0..<256 { out[s] *= normaliser }
        // Kept so that `observe` reads the network's probability of the byte that comes
        // without another softmax.
        (m + networkOffset).copyMemory(from: base, byteCount: 256 * 4)
        m.storeBytes(of: UInt32(1), toByteOffset: 40, as: UInt32.self)
    }

    /// The network's probability of `symbol` in the last published distribution, if
    /// `distribution` published one since the last byte.
    public static func networkProbability(_ m: UnsafeMutableRawPointer, of symbol: UInt8) -> Float? {
        guard m.load(fromByteOffset: 40, as: UInt32.self) == 1 else { return nil }
        return m.load(fromByteOffset: networkOffset + Int(symbol) * 4, as: Float.self)
    }

    /// Resolves the last published distribution against the byte that came (`symbol`, with the
    /// network's probability of it `baseProbability`): returns the published probability of it
    /// (as `distribution` gave it), then learns: the mixture weight, the counts, the history.
    public static func observe(_ m: UnsafeMutableRawPointer, buckets: Int, symbol: UInt8, baseProbability: Double) -> Double {
        let history = m.load(as: UInt64.self), seen = m.load(fromByteOffset: 8, as: UInt64.self)
        let pBase = max(baseProbability, 1e-30)
        let (n0, u0) = order0Totals(m)
        var p = smooth(count: Int(m.load(fromByteOffset: order0Offset + Int(symbol) * 4, as: UInt32.self)), lower: 1.0 / 256, n: n0, u: u0)
        if seen >= 1 {
            let (n, u) = rowTotals(m, history)
            if n > 0 { p = smooth(count: Int(order1Row(m, history)[Int(symbol)]), lower: p, n: n, u: u) }
        }
        for k in 2...orders where UInt64(k) <= seen {
            guard let b = find(m, buckets: buckets, hash: contextHash(history, order: k)) else { continue }
            let (n, u) = totals(b)
            if n > 0 { p = smooth(count: count(b, symbol), lower: p, n: n, u: u) }
        }
        let w = weight(m)
        let published = w * p + (1 - w) * pBase
        let logOdds = m.load(fromByteOffset: 16, as: Double.self) + log(p) - log(pBase)
        m.storeBytes(of: min(max(logOdds, -maxLogOdds), maxLogOdds), toByteOffset: 16, as: Double.self)
        learn(m, buckets: buckets, symbol: symbol)
        return published
    }

    /// Counts `symbol` and appends it to the history, without scoring (a stream's first byte, or
    /// one whose prediction was not kept). Longest context first; a shorter one is counted only
    /// when the symbol was new to the longer (Kneser–Ney's update exclusion: a short context's
    /// counts then say which contexts a symbol follows, not how often, which is what is asked of
    /// it when a longer one escapes to it). The longest context counted is one longer than the
    /// longest that already has a bucket.
    public static func learn(_ m: UnsafeMutableRawPointer, buckets: Int, symbol: UInt8) {
        let history = m.load(as: UInt64.self), seen = m.load(fromByteOffset: 8, as: UInt64.self)
        let longest = Int(min(UInt64(orders), seen))
        var top = min(1, longest)
        while top < longest, find(m, buckets: buckets, hash: contextHash(history, order: top + 1)) != nil { top += 1 }
        top = min(top + 1, longest)
        var known = false
        var k = top
        while k >= 2 && !known {
            let b = claim(m, buckets: buckets, hash: contextHash(history, order: k))
            known = count(b, symbol) > 0
            add(b, symbol)
            k -= 1
        }
        if k == 1 && !known && seen >= 1 {
            let row = UnsafeMutablePointer(mutating: order1Row(m, history))
            let totals = (m + rowTotalsOffset + Int(history & 0xFF) * 8).assumingMemoryBound(to: UInt32.self)
            let c = row[Int(symbol)]
            known = c > 0
            row[Int(symbol)] = c + 1
            totals[0] += 1
            if !known { totals[1] += 1 }
            if c + 1 == UInt16.max {
                var n: UInt32 = 0
                for s in 0..<256 {
                    row[s] = UInt16((Int(row[s]) + 1) / 2)
                    n += UInt32(row[s])
                }
                totals[0] = n
            }
        }
        if !known {
            let counts = (m + order0Offset).assumingMemoryBound(to: UInt32.self)
            let c = counts[Int(symbol)]
            counts[Int(symbol)] = c + 1
            m.storeBytes(of: m.load(fromByteOffset: 24, as: UInt64.self) + 1, toByteOffset: 24, as: UInt64.self)
            if c == 0 { m.storeBytes(of: m.load(fromByteOffset: 32, as: UInt64.self) + 1, toByteOffset: 32, as: UInt64.self) }
            if c + 1 == UInt32.max {
                var n: UInt64 = 0
                for s in 0..<256 {
                    counts[s] = UInt32((UInt64(counts[s]) + 1) / 2)
                    n += UInt64(counts[s])
                }
                m.storeBytes(of: n, toByteOffset: 24, as: UInt64.self)
            }
        }
        m.storeBytes(of: history << 8 | UInt64(symbol), as: UInt64.self)
        m.storeBytes(of: seen &+ 1, toByteOffset: 8, as: UInt64.self)
        m.storeBytes(of: UInt32(0), toByteOffset: 40, as: UInt32.self)
    }

    /// Forgets the history (a RESET or a gap): the counts and the mixture weight are what the
    /// stream has learnt, and stay.
    public static func resetHistory(_ m: UnsafeMutableRawPointer) {
        m.storeBytes(of: UInt64(0), as: UInt64.self)
        m.storeBytes(of: UInt64(0), toByteOffset: 8, as: UInt64.self)
        m.storeBytes(of: UInt32(0), toByteOffset: 40, as: UInt32.self)
    }

    // MARK: Parts

    /// One context's Pitman–Yor step over the distribution below it, for one symbol counted `c`
    /// times in a context with total `n` and `u` distinct symbols.
    @inline(__always)
    static func smooth(count c: Int, lower p: Double, n: Int, u: Int) -> Double {
        let (inverse, escape) = smoothing(n: n, u: u)
        return max(Double(c) - discount, 0) * inverse + escape * p
    }

    /// 1/(n + α) and the escape share (α + d·u)/(n + α) of a context.
    @inline(__always)
    static func smoothing(n: Int, u: Int) -> (inverse: Double, escape: Double) {
        let inverse = 1 / (Double(n) + concentration)
        return (inverse, (concentration + discount * Double(u)) * inverse)
    }

    /// The same step for every symbol of a dense table (orders 0 and 1); nothing when the
    /// context has no counts.
    @inline(__always)
    static func smoothDense<C: BinaryInteger>(_ out: UnsafeMutablePointer<Float>, counts: UnsafePointer<C>, n: Int, u: Int) {
        guard n > 0 else { return }
        let (inverse, escape) = smoothing(n: n, u: u)
        let fi = Float(inverse), fe = Float(escape), d = Float(discount)
        for s in 0..<256 { out[s] = max(Float(counts[s]) - d, 0) * fi + fe * out[s] }
    }

    static func order0Totals(_ m: UnsafeMutableRawPointer) -> (n: Int, u: Int) {
        (Int(m.load(fromByteOffset: 24, as: UInt64.self)), Int(m.load(fromByteOffset: 32, as: UInt64.self)))
    }

    /// The order-1 counts after the last byte.
    static func order1Row(_ m: UnsafeMutableRawPointer, _ history: UInt64) -> UnsafePointer<UInt16> {
        UnsafePointer((m + order1Offset + Int(history & 0xFF) * 512).assumingMemoryBound(to: UInt16.self))
    }

    /// The order-1 row's total count and distinct bytes.
    static func rowTotals(_ m: UnsafeMutableRawPointer, _ history: UInt64) -> (n: Int, u: Int) {
        let at = rowTotalsOffset + Int(history & 0xFF) * 8
        return (Int(m.load(fromByteOffset: at, as: UInt32.self)), Int(m.load(fromByteOffset: at + 4, as: UInt32.self)))
    }

    /// The counts' share of the mixture.
    static func weight(_ m: UnsafeMutableRawPointer) -> Double {
        1 / (1 + exp(-m.load(fromByteOffset: 16, as: Double.self)))
    }

    /// 64-bit hash of the last `order` bytes and the order (splitmix64's finaliser).
    static func contextHash(_ history: UInt64, order k: Int) -> UInt64 {
        let mask: UInt64 = k >= 8 ? ~0 : (1 << UInt64(8 * k)) - 1
        var z = (history & mask) &+ UInt64(k) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    private static func check(_ hash: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: hash >> 32) | 1 }

    private static func bucket(_ m: UnsafeMutableRawPointer, _ i: Int) -> UnsafeMutableRawPointer { m + fixedBytes + i * bucketBytes }

    /// The first bucket of the context's pair.
    private static func pair(_ hash: UInt64, _ buckets: Int) -> Int { Int(truncatingIfNeeded: hash % UInt64(buckets / 2)) * 2 }

    /// The context's bucket, if it has one.
    static func find(_ m: UnsafeMutableRawPointer, buckets: Int, hash: UInt64) -> UnsafeMutableRawPointer? {
        let i = pair(hash, buckets), c = check(hash)
        if bucket(m, i).load(as: UInt32.self) == c { return bucket(m, i) }
        if bucket(m, i ^ 1).load(as: UInt32.self) == c { return bucket(m, i ^ 1) }
        return nil
    }

    /// The context's bucket, taking the emptier of its pair when it has none.
    static func claim(_ m: UnsafeMutableRawPointer, buckets: Int, hash: UInt64) -> UnsafeMutableRawPointer {
        if let b = find(m, buckets: buckets, hash: hash) { return b }
        let i = pair(hash, buckets)
        let a = bucket(m, i), b = bucket(m, i ^ 1)
        let victim = totals(a).n <= totals(b).n ? a : b
        victim.initializeMemory(as: UInt8.self, repeating: 0, count: bucketBytes)
        victim.storeBytes(of: check(hash), as: UInt32.self)
        return victim
    }

    /// A bucket's symbol slots and their counts (0: the slot is free).
    static func symbols(_ b: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt8> { (b + 4).assumingMemoryBound(to: UInt8.self) }
    static func counts(_ b: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt8> {
        (b + 4 + symbolsPerBucket).assumingMemoryBound(to: UInt8.self)
    }

    /// Total count and distinct symbols of a bucket.
    static func totals(_ b: UnsafeMutableRawPointer) -> (n: Int, u: Int) {
        let counts = counts(b)
        var n = 0, u = 0
        for i in 0..<symbolsPerBucket where counts[i] > 0 {
            n += Int(counts[i])
            u += 1
        }
        return (n, u)
    }

    static func count(_ b: UnsafeMutableRawPointer, _ s: UInt8) -> Int {
        let symbols = symbols(b), counts = counts(b)
        for i in 0..<symbolsPerBucket where counts[i] > 0 && symbols[i] == s { return Int(counts[i]) }
        return 0
    }

    /// Counts `s` once: in its slot, else in an empty one, else in place of the least counted
    /// symbol (the first of equals). A count reaching 255 halves the bucket's counts (rounding
    /// up), so old evidence fades.
    static func add(_ b: UnsafeMutableRawPointer, _ s: UInt8) {
        let symbols = symbols(b), counts = counts(b)
        var slot = -1, empty = -1, least = 0
        for i in 0..<symbolsPerBucket {
            if counts[i] == 0 {
                if empty < 0 { empty = i }
            } else if symbols[i] == s {
                slot = i
                break
            } else if counts[i] < counts[least] {
                least = i
            }
        }
        if slot < 0 {
            slot = empty >= 0 ? empty : least
            symbols[slot] = s
            counts[slot] = 0
        }
        counts[slot] += 1
        if counts[slot] == 255 {
            for i in 0..<symbolsPerBucket { counts[i] = UInt8((Int(counts[i]) + 1) / 2) }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
