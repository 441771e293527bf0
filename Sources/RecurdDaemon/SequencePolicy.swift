import RecurdStreams
import RecurdWire

/// DESIGN §4's sequence rules for one admitted message: duplicates are dropped, gaps counted
/// (and, under `on-gap reset`, the state zeroed), RESET restarts the numbering at the message's
/// own seq. Pure: the caller applies the verdict.
enum SequencePolicy {
    enum Verdict: Equatable {
        /// Below the expected seq: dropped whole.
        case duplicate(seq: UInt64, expected: UInt64)
        /// Accepted: the message's first seq and what to do before its first step.
        case accept(seq: UInt64, flags: OutputFlags, resetFirst: Bool, breakFirst: Bool)
    }

    /// The verdict for a message with `flags` and `seq` (nil: a JSON message without one) on a
    /// stream that is new (`stream` nil) or has `nextSeq` expected. `afterEnd`: the stream's
    /// queue ends with END, so this message starts it afresh. `anySeq`: the stream was RESET
    /// without a seq, so this message's seq is taken as it comes (no gap, no duplicate).
    static func verdict(flags: WireFlags, seq: UInt64?, stream nextSeq: UInt64?, afterEnd: Bool, anySeq: Bool,
                        onGap: ServeConfiguration.GapPolicy) -> Verdict {
        guard let expected = nextSeq else {
            return .accept(seq: seq ?? 0, flags: .newState, resetFirst: false, breakFirst: false)
        }
        if flags.contains(.reset) || afterEnd {
            return .accept(seq: seq ?? 0, flags: .newState, resetFirst: true, breakFirst: false)
        }
        if anySeq {
            return .accept(seq: seq ?? expected, flags: [], resetFirst: false, breakFirst: false)
        }
        let s = seq ?? expected
        if s < expected { return .duplicate(seq: s, expected: expected) }
        if s > expected {
            return onGap == .reset
                ? .accept(seq: s, flags: [.gap, .newState], resetFirst: true, breakFirst: false)
                : .accept(seq: s, flags: .gap, resetFirst: false, breakFirst: true)
        }
        return .accept(seq: s, flags: [], resetFirst: false, breakFirst: false)
    }
}
