/// A per-stream byte-context model that sharpens a text stream's next-byte distribution, in the
/// manner of PPM: counts of what followed each of the last 0…`orders` bytes' contexts, blended
/// from the shortest context up by hierarchical Pitman–Yor smoothing (discount 0.75,
/// concentration 0.5) over a uniform base, with Kneser–Ney's update exclusion; then an online
/// two-expert Bayesian mixture (log-odds clamped to ±8, so either can win back) weighs those
/// counts against the network's own distribution, so the published distribution is never much
/// worse than the better of the two. The network generalises across the stream's history and
/// (pre-trained) from other text; the counts remember this stream's exact phrases at once.
///
/// Counts look back at most 8 bytes, which is blind to what machine-made text repeats most: long
/// verbatim passages. A match model (as in lpaq) follows the latest earlier occurrence of the
/// last `minMatch` bytes through a ring of the stream's past bytes; while the two agree, it
/// predicts the byte that came next there. How far to trust that is learnt per stream, not
/// assumed: an adaptive table indexed by the match length and (interpolated) by the mixture's
/// own probability of the predicted byte gives the probability `c` that it comes; the published
/// distribution gives the predicted byte `c` and the rest the mixture's shares of `1 − c`.
/// A fresh table gives back the mixture's probability, so the match model starts neutral.
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
///            40  the network's distribution below is the last published one (u32)
///            44  match length (u32, 0: none)   48  bytes ever written to the ring (u64)
///            56  ring position of the byte the match predicts (u64)
/// order 0    64  256 × u32 counts
/// order 1  1088  256 × 256 × u16 counts (row: the previous byte)
///        132160  256 × (u32 total, u32 distinct): each row's totals
///        134208  the network's last published distribution (256 × f32)
/// match    135232  16 length classes × 33 cells of (f64 probability − the cell's centre, f64 count)
/// orders 2…  143680  `buckets` buckets of 32 bytes, probed in pairs:
///                check (u32, 0 = empty), symbols (14 × u8), counts (14 × u8)
/// then  2 × `buckets` u32: where the last `minMatch` bytes last ended (ring position, low 32 bits)
/// then  8 × `buckets` bytes: the ring of past bytes
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
    static let cellsOffset = networkOffset + 256 * 4
    static let lengthClasses = 16
    static let cellsPerClass = 33
    static let fixedBytes = cellsOffset + lengthClasses * cellsPerClass * 16
    static let bucketBytes = 32
    /// Match model: bytes that must agree before a match is followed, how far back a candidate
    /// is checked, and the per-bucket sizes of its position table and ring.
    public static let minMatch = 6
    static let verifyLength = 32
    static let tableEntriesPerBucket = 2
    static let ringBytesPerBucket = 8
    static let bytesPerBucket = bucketBytes + 4 * tableEntriesPerBucket + ringBytesPerBucket
    /// The mixture's log-odds stay within ±`maxLogOdds`, so either expert can win back.
    static let maxLogOdds = 8.0

    /// Bytes of a model with `buckets` buckets (even, at least 2).
    public static func bytes(buckets: Int) -> Int { fixedBytes + buckets * bytesPerBucket }

    /// Buckets that fit in `bytes` (even; 0 when fewer than 2 fit).
    public static func buckets(fitting bytes: Int) -> Int {
        let n = ((bytes - fixedBytes) / bytesPerBucket) & ~1
        return n >= 2 ? n : 0
    }

    /// The published distribution: the counts' and the network's (`base`, probabilities over
    /// 256 bytes) mixed, written to `out` (256 floats, summing to 1).
    public static func distribution(_ m: UnsafeMutableRawPointer, buckets: Int, base: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let history = m.load(as: UInt64.self), seen = m.load(fromByteOffset: 8, as: UInt64.self)
        out.update(repeating: 1.0 / 256, count: 256)
        let (n0, u0) = order0Totals(m)
        smoothDense(out, counts: order0Counts(m), n: n0, u: u0)
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
        if let (predicted, length) = matchPrediction(m, buckets: buckets) {
            let qb = Double(out[Int(predicted)])
            let c = cellProbability(m, length: length, at: cellPosition(qb))
            // 1 − q from the other bytes' shares: computed as 1 − q in f32 it would cancel
            // to a few digits when q is near 1.
            var others = 0.0
            for s in 0..<256 where s != Int(predicted) { others += Double(out[s]) }
            let rest = Float((1 - c) / max(others, 1e-9))
            for s in 0..<256 { out[s] *= rest }
            out[Int(predicted)] = Float(c)
        }
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

    /// Resolves the last published distribution against the byte that came (`symbol`; `network`
    /// gives the network's probability of any byte): returns the published probability of it (as
    /// `distribution` gave it), then learns: the mixture weight, the match table, the counts,
    /// the history.
    public static func observe(_ m: UnsafeMutableRawPointer, buckets: Int, symbol: UInt8, network: (UInt8) -> Double) -> Double {
        let pBase = max(network(symbol), 1e-30)
        let match = matchPrediction(m, buckets: buckets)
        let predicted = match?.byte ?? symbol
        // The counts' probability of the byte that came and of the one the match predicts.
        let (n0, u0) = order0Totals(m)
        var p = countsStep(order0Counts(m), symbol: symbol, predicted: predicted, lower: (1.0 / 256, 1.0 / 256), n: n0, u: u0)
        let history = m.load(as: UInt64.self), seen = m.load(fromByteOffset: 8, as: UInt64.self)
        if seen >= 1 {
            let (n, u) = rowTotals(m, history)
            p = countsStep(order1Row(m, history), symbol: symbol, predicted: predicted, lower: p, n: n, u: u)
        }
        for k in 2...orders where UInt64(k) <= seen {
            guard let b = find(m, buckets: buckets, hash: contextHash(history, order: k)) else { continue }
            let (n, u) = totals(b)
            if n > 0 {
                p = (smooth(count: count(b, symbol), lower: p.0, n: n, u: u), smooth(count: count(b, predicted), lower: p.1, n: n, u: u))
            }
        }
        let w = weight(m)
        var published = w * p.0 + (1 - w) * pBase
        if let match {
            let qb = predicted == symbol ? published : w * p.1 + (1 - w) * max(network(predicted), 1e-30)
            let at = cellPosition(qb)
            let c = cellProbability(m, length: match.length, at: at)
            if predicted != symbol { published *= (1 - c) / max(1 - qb, 1e-9) } else { published = c }
            trainCells(m, length: match.length, at: at, hit: predicted == symbol)
        }
        let logOdds = m.load(fromByteOffset: 16, as: Double.self) + log(p.0) - log(pBase)
        m.storeBytes(of: min(max(logOdds, -maxLogOdds), maxLogOdds), toByteOffset: 16, as: Double.self)
        learn(m, buckets: buckets, symbol: symbol)
        return published
    }

    /// One dense table's smoothing step for the two symbols.
    @inline(__always)
    private static func countsStep<C: BinaryInteger>(_ counts: UnsafePointer<C>, symbol: UInt8, predicted: UInt8,
                                                     lower: (Double, Double), n: Int, u: Int) -> (Double, Double) {
        guard n > 0 else { return lower }
        return (smooth(count: Int(counts[Int(symbol)]), lower: lower.0, n: n, u: u),
                smooth(count: Int(counts[Int(predicted)]), lower: lower.1, n: n, u: u))
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
            let totals = (m + rowTotalsOffset + Int(history & 0xFF) * 8).assumingMemoryBound(to: UInt32.self)
            known = countDense(UnsafeMutablePointer(mutating: order1Row(m, history)), symbol, total: totals, distinct: totals + 1)
        }
        if !known {
            let totals = (m + 24).assumingMemoryBound(to: UInt64.self)
            _ = countDense(UnsafeMutablePointer(mutating: order0Counts(m)), symbol, total: totals, distinct: totals + 1)
        }
        m.storeBytes(of: history << 8 | UInt64(symbol), as: UInt64.self)
        m.storeBytes(of: seen &+ 1, toByteOffset: 8, as: UInt64.self)
        m.storeBytes(of: UInt32(0), toByteOffset: 40, as: UInt32.self)
        followMatch(m, buckets: buckets, symbol: symbol)
    }

    /// Counts `symbol` once in a dense table (orders 0 and 1) and its total and distinct count;
    /// returns whether it was there before. A count reaching its type's maximum halves the
    /// table's counts (rounding up, so none that was counted falls to 0) and recomputes the total.
    private static func countDense<C: FixedWidthInteger & UnsignedInteger, T: FixedWidthInteger & UnsignedInteger>(
        _ counts: UnsafeMutablePointer<C>, _ symbol: UInt8, total: UnsafeMutablePointer<T>, distinct: UnsafeMutablePointer<T>
    ) -> Bool {
        let c = counts[Int(symbol)]
        counts[Int(symbol)] = c + 1
        total.pointee += 1
        if c == 0 { distinct.pointee += 1 }
        if c + 1 == C.max {
            var n: T = 0
            for s in 0..<256 {
                counts[s] = counts[s] / 2 + counts[s] % 2
                n += T(counts[s])
            }
            total.pointee = n
        }
        return c > 0
    }

    /// Forgets the history (a RESET or a gap): the counts and the mixture weight are what the
    /// stream has learnt, and stay.
    public static func resetHistory(_ m: UnsafeMutableRawPointer) {
        m.storeBytes(of: UInt64(0), as: UInt64.self)
        m.storeBytes(of: UInt64(0), toByteOffset: 8, as: UInt64.self)
        m.storeBytes(of: UInt32(0), toByteOffset: 40, as: UInt32.self)
        m.storeBytes(of: UInt32(0), toByteOffset: 44, as: UInt32.self)
    }

    // MARK: Match model

    /// The byte the match predicts and the match's length, if one is being followed.
    static func matchPrediction(_ m: UnsafeMutableRawPointer, buckets: Int) -> (byte: UInt8, length: Int)? {
        let length = Int(m.load(fromByteOffset: 44, as: UInt32.self))
        guard length > 0 else { return nil }
        let at = m.load(fromByteOffset: 56, as: UInt64.self)
        return (ring(m, buckets)[Int(at % ringSize(buckets))], length)
    }

    /// Writes `symbol` (the history already holds it) to the ring; extends the match if it
    /// predicted `symbol`, else drops it; with no match, looks up the latest earlier occurrence of
    /// the last `minMatch` bytes and follows it if at least that many bytes before it agree.
    static func followMatch(_ m: UnsafeMutableRawPointer, buckets: Int, symbol: UInt8) {
        let size = ringSize(buckets), ring = ring(m, buckets)
        var length = m.load(fromByteOffset: 44, as: UInt32.self)
        var at = m.load(fromByteOffset: 56, as: UInt64.self)
        let position = m.load(fromByteOffset: 48, as: UInt64.self)
        if length > 0 {
            if ring[Int(at % size)] == symbol {
                length = min(length + 1, 65535)
                at += 1
            } else {
                length = 0
            }
        }
        ring[Int(position % size)] = symbol
        let written = position + 1
        m.storeBytes(of: written, toByteOffset: 48, as: UInt64.self)
        if m.load(fromByteOffset: 8, as: UInt64.self) >= UInt64(minMatch) {
            let table = matchTable(m, buckets)
            let slot = Int(contextHash(m.load(as: UInt64.self), order: minMatch) % UInt64(buckets * tableEntriesPerBucket))
            let stored = table[slot], low = UInt32(truncatingIfNeeded: written)
            let distance = UInt64(low &- stored)
            // distance < written always holds for a table this model wrote; a damaged record's may not.
            if length == 0 && stored != 0 && distance >= 1 && distance < size && distance < written {
                let candidate = written - distance
                var agree: UInt64 = 0
                while agree < UInt64(verifyLength) && agree < candidate && candidate - 1 - agree + size >= written
                    && ring[Int((candidate - 1 - agree) % size)] == ring[Int((written - 1 - agree) % size)] {
                    agree += 1
                }
                if agree >= UInt64(minMatch) {
                    length = UInt32(agree)
                    at = candidate
                }
            }
            if low != 0 { table[slot] = low }
        }
        m.storeBytes(of: length, toByteOffset: 44, as: UInt32.self)
        m.storeBytes(of: at, toByteOffset: 56, as: UInt64.self)
    }

    /// Where the last `minMatch` bytes last ended: the table after the buckets.
    private static func matchTable(_ m: UnsafeMutableRawPointer, _ buckets: Int) -> UnsafeMutablePointer<UInt32> {
        (m + fixedBytes + buckets * bucketBytes).assumingMemoryBound(to: UInt32.self)
    }

    /// The ring of past bytes, after the match table.
    private static func ring(_ m: UnsafeMutableRawPointer, _ buckets: Int) -> UnsafeMutablePointer<UInt8> {
        UnsafeMutableRawPointer(matchTable(m, buckets) + buckets * tableEntriesPerBucket).assumingMemoryBound(to: UInt8.self)
    }

    private static func ringSize(_ buckets: Int) -> UInt64 { UInt64(buckets * ringBytesPerBucket) }

    /// The match length's class: 6…11 one each, then one per doubling, the last from 523 on.
    static func lengthClass(_ length: Int) -> Int {
        length < minMatch + 6 ? max(length - minMatch, 0) : min(lengthClasses - 1, 6 + (63 - (length - minMatch - 5).leadingZeroBitCount))
    }

    /// Where the mixture's probability `q` of the predicted byte falls between the cells: the
    /// lower cell and the share of the upper one (log-odds −8…8 in steps of ½).
    static func cellPosition(_ q: Double) -> (index: Int, upper: Double) {
        let odds = min(max(log(q / max(1 - q, 1e-300)), -8), 8)
        let x = (odds + 8) * 2
        let j = min(Int(x), cellsPerClass - 2)
        return (j, x - Double(j))
    }

    /// A cell's centre: the probability whose log-odds it stands for.
    static func cellCentre(_ j: Int) -> Double { 1 / (1 + exp(-(Double(j) / 2 - 8))) }

    private static func cell(_ m: UnsafeMutableRawPointer, _ length: Int, _ j: Int) -> UnsafeMutablePointer<Double> {
        (m + cellsOffset + ((lengthClass(length) * cellsPerClass + j) * 16)).assumingMemoryBound(to: Double.self)
    }

    /// The probability that the predicted byte comes, learnt for this length and the mixture's
    /// probability of it (`at`: its `cellPosition`); kept within [1/4096, 1 − 1/4096] so that a
    /// surprise costs at most 12 bits.
    static func cellProbability(_ m: UnsafeMutableRawPointer, length: Int, at: (index: Int, upper: Double)) -> Double {
        let (j, f) = at
        let lo = cellCentre(j) + cell(m, length, j)[0], hi = cellCentre(j + 1) + cell(m, length, j + 1)[0]
        return min(max((1 - f) * lo + f * hi, 1.0 / 4096), 1 - 1.0 / 4096)
    }

    /// Moves the two cells towards what happened, each by its share, at the rate 1/(n + 1.5) of
    /// its count n (at most 255, so the table keeps adapting).
    static func trainCells(_ m: UnsafeMutableRawPointer, length: Int, at: (index: Int, upper: Double), hit: Bool) {
        let (j, f) = at
        let target: Double = hit ? 1 : 0
        func train(_ i: Int, _ share: Double) {
            let c = cell(m, length, i)
            c[0] += share * (target - (cellCentre(i) + c[0])) / (c[1] + 1.5)
            c[1] = min(c[1] + share, 255)
        }
        train(j, 1 - f)
        train(j + 1, f)
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

    /// The order-0 counts.
    static func order0Counts(_ m: UnsafeMutableRawPointer) -> UnsafePointer<UInt32> {
        UnsafePointer((m + order0Offset).assumingMemoryBound(to: UInt32.self))
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
