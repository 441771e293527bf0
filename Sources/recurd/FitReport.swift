/// The `--report` JSON.
struct FitReport: Codable {
    let steps: Int
    let targets: Int
    let updates: Int
    let skippedUpdates: Int
    let meanLoss: Double
    /// Mean progressive loss over the second half of the targets.
    let secondHalfLoss: Double
    let bitsPerByte: Double?
    let stepsPerSecond: Double
    let seconds: Double
    let lossUnit: String
    let curve: [ProgressCurve.Point]

    enum CodingKeys: String, CodingKey {
        case steps, targets, updates, curve, seconds
        case skippedUpdates = "skipped_updates"
        case meanLoss = "mean_loss"
        case secondHalfLoss = "second_half_loss"
        case bitsPerByte = "bits_per_byte"
        case stepsPerSecond = "steps_per_second"
        case lossUnit = "loss_unit"
    }
}
