/// The progressive loss, accumulated; a point every `block` targets.
struct ProgressCurve {
    struct Point: Codable {
        /// Targets seen so far.
        let targets: Int
        /// Mean progressive loss over the last block of targets.
        let blockLoss: Double
        /// Mean progressive loss over all targets so far.
        let runningLoss: Double
        enum CodingKeys: String, CodingKey {
            case targets
            case blockLoss = "block_loss"
            case runningLoss = "running_loss"
        }
    }

    let block: Int
    private(set) var count = 0
    /// Every loss, for the second-half mean (8 bytes a target).
    private var all: [Double] = []
    private var sum = 0.0
    private var blockSum = 0.0
    private var blockCount = 0
    private(set) var points: [Point] = []

    init(block: Int) { self.block = block }

    var mean: Double { count == 0 ? .nan : sum / Double(count) }

    /// Mean over the second half of the targets (the first half is where learning starts).
    var secondHalfMean: Double {
        let tail = all[(all.count / 2)...]
        return tail.isEmpty ? .nan : tail.reduce(0, +) / Double(tail.count)
    }

    mutating func add(_ loss: Double) -> Point? {
        all.append(loss)
        count += 1
        sum += loss
        blockSum += loss
        blockCount += 1
        guard blockCount == block else { return nil }
        return flush()
    }

    /// Adds the last, partial block.
    mutating func finish() { if blockCount > 0 { _ = flush() } }

    private mutating func flush() -> Point {
        let p = Point(targets: count, blockLoss: blockSum / Double(blockCount), runningLoss: mean)
        points.append(p)
        blockSum = 0
        blockCount = 0
        return p
    }
}
