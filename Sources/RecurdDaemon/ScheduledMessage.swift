import RecurdWire

/// An admitted message waiting for, or in, its batched steps. Plain values only (its inputs are
/// in one of the scheduler's arenas, its key in the stream table), so the hot loop copies it
/// without reference counting.
struct ScheduledMessage {
    var slot: Int
    var header: InputHeader
    /// The arena holding its inputs.
    var arena: Int
    /// Steps done so far.
    var nextStep = 0
    /// Flags of its first output (new state, gap).
    var flags: OutputFlags
    /// Zero the stream's state before the first step (RESET, a gap under `on-gap reset`).
    var resetFirst: Bool
    /// A gap under `on-gap continue`: nothing is scored or learnt across it.
    var breakFirst: Bool
    /// Its first step has been reached (reset and break applied).
    var started = false
    /// Monotonic receive time, for the latency histogram.
    var receivedAt: UInt64
    /// The next message of the same stream (−1: none).
    var next: Int32 = -1
    /// First step not yet published.
    var chunkStart = 0
    /// Where this cycle's outputs of the current chunk start in the scheduler's buffers (−1: none yet).
    var outputOffset = -1
    var lossOffset = -1
    /// Steps the current chunk's region holds.
    var chunkCapacity = 0

    var finished: Bool { nextStep >= header.steps }
}
