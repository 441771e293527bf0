import RecurdWire

/// An admitted message waiting for (or in) its batched steps during one serving cycle. Plain
/// values only (its inputs are in the cycle's `InputArena`, its key in the stream table), so
/// the hot loop copies it without reference counting.
struct PendingMessage {
    var slot: Int
    var message: InputHeader
    /// Steps done so far.
    var nextStep = 0
    var flags: OutputFlags = []
    /// Zero the stream's state when this message reaches the head of its stream's queue.
    var resetFirst = false
    /// Monotonic receive time, for the latency histogram.
    var receivedAt: UInt64
    /// Offset of this message's predictions (`steps × outputs`) in the cycle's arena.
    var outputOffset = 0
    /// Offset of this message's progressive losses (`steps`) in the cycle's arena.
    var lossOffset = 0
    /// The next pending message of the same stream in this cycle (−1: none).
    var nextInStream = -1

    var finished: Bool { nextStep >= message.steps }
}
