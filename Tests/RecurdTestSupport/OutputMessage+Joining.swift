import RecurdWire

extension OutputMessage {
    /// This chunk followed by the next chunk of the same input message: steps, predictions,
    /// losses and scores concatenated; the flags of the first chunk (`.more` from the later one),
    /// the model version and timestamp of the later one. Nil when `next` does not continue this
    /// one (its seq is not the next, or it starts a new state): the rest of this answer was lost.
    func joined(with next: OutputMessage) -> OutputMessage? {
        guard next.seq == seq &+ UInt64(steps), !next.flags.contains(.newState) else { return nil }
        var m = self
        m.steps += next.steps
        m.values += next.values
        m.ids += next.ids
        m.losses += next.losses
        m.anomaly += next.anomaly
        m.flags = flags.subtracting(.more).union(next.flags.intersection(.more))
        m.modelVersion = next.modelVersion
        m.timestamp = next.timestamp
        return m
    }
}
