import RecurdForecast
import RecurdNumerics

/// All of one stream's state, read and written in place: sequence bookkeeping, recurrent
/// state, the last prediction, the running loss, the standardiser and the learning window. A
/// value type over the record's memory (owned by a `StreamTable`, or by `OnlineLearner` for
/// `recurd fit`): copying it does not copy the record.
public struct StreamRecord {
    public let layout: StreamRecordLayout
    public let core: UnsafeMutableRawPointer
    /// The window block (nil when the layout has no window).
    let windowBase: UnsafeMutableRawPointer?

    public init(layout: StreamRecordLayout, core: UnsafeMutableRawPointer, window: UnsafeMutableRawPointer?) {
        self.layout = layout
        self.core = core
        windowBase = window
    }

    struct Flags: OptionSet {
        let rawValue: UInt32
        /// The last step's logits await a next-step target.
        static let hasPrediction = Flags(rawValue: 1 << 0)
        /// The last step may enter the window once its target is known.
        static let previousLearnable = Flags(rawValue: 1 << 1)
        /// The window block has been initialised (untouched until the stream first learns).
        static let windowInUse = Flags(rawValue: 1 << 2)
        /// The next output carries the new-state flag (a zero-step RESET had no output of its own).
        static let announceNew = Flags(rawValue: 1 << 3)
        /// A RESET came without a seq: the next message's seq is taken as it comes.
        static let anySeq = Flags(rawValue: 1 << 4)
        /// Created and not yet spoken to (a stream new to the daemon and to its store).
        static let fresh = Flags(rawValue: 1 << 5)
        /// The next output carries the gap flag (the message after the gap published nothing).
        static let announceGap = Flags(rawValue: 1 << 6)
    }

    // MARK: Bookkeeping

    /// Next expected seq.
    public var nextSeq: UInt64 {
        get { core.load(as: UInt64.self) }
        nonmutating set { core.storeBytes(of: newValue, as: UInt64.self) }
    }
    /// Steps consumed.
    public var steps: UInt64 {
        get { core.load(fromByteOffset: 8, as: UInt64.self) }
        nonmutating set { core.storeBytes(of: newValue, toByteOffset: 8, as: UInt64.self) }
    }
    /// Sum of the progressive losses recorded.
    public var lossSum: Double {
        get { core.load(fromByteOffset: 16, as: Double.self) }
        nonmutating set { core.storeBytes(of: newValue, toByteOffset: 16, as: Double.self) }
    }
    /// Number of progressive losses recorded.
    public var lossCount: UInt64 {
        get { core.load(fromByteOffset: 24, as: UInt64.self) }
        nonmutating set { core.storeBytes(of: newValue, toByteOffset: 24, as: UInt64.self) }
    }
    /// When the stream first spoke (Unix seconds).
    public var createdAt: Double {
        get { core.load(fromByteOffset: 32, as: Double.self) }
        nonmutating set { core.storeBytes(of: newValue, toByteOffset: 32, as: Double.self) }
    }
    /// When the stream last spoke (Unix seconds).
    public var lastSeen: Double {
        get { core.load(fromByteOffset: 40, as: Double.self) }
        nonmutating set { core.storeBytes(of: newValue, toByteOffset: 40, as: Double.self) }
    }
    var flags: Flags {
        get { Flags(rawValue: core.load(fromByteOffset: 48, as: UInt32.self)) }
        nonmutating set { core.storeBytes(of: newValue.rawValue, toByteOffset: 48, as: UInt32.self) }
    }
    var standardCount: Double {
        get { core.load(fromByteOffset: 56, as: Double.self) }
        nonmutating set { core.storeBytes(of: newValue, toByteOffset: 56, as: Double.self) }
    }

    /// Whether the last prediction awaits its next-step target.
    public var awaitsTarget: Bool { flags.contains(.hasPrediction) }

    /// The next output carries the new-state flag.
    public var announcesNewState: Bool {
        get { flags.contains(.announceNew) }
        nonmutating set { if newValue { flags.insert(.announceNew) } else { flags.remove(.announceNew) } }
    }

    /// The next output carries the gap flag.
    public var announcesGap: Bool {
        get { flags.contains(.announceGap) }
        nonmutating set { if newValue { flags.insert(.announceGap) } else { flags.remove(.announceGap) } }
    }

    /// The stream is new: no message has been admitted for it yet.
    public var isFresh: Bool {
        get { flags.contains(.fresh) }
        nonmutating set { if newValue { flags.insert(.fresh) } else { flags.remove(.fresh) } }
    }

    /// The next message's seq is taken as it comes (after a RESET without a seq).
    public var acceptsAnySeq: Bool {
        get { flags.contains(.anySeq) }
        nonmutating set { if newValue { flags.insert(.anySeq) } else { flags.remove(.anySeq) } }
    }

    // MARK: Arrays

    /// (stateSize) packed recurrent state, as `StepEngine` loads and stores it.
    public var state: UnsafeMutablePointer<Float> { (core + layout.stateOffset).assumingMemoryBound(to: Float.self) }
    /// (O) logits of the last prediction.
    var lastLogits: UnsafeMutablePointer<Float> { (core + layout.logitsOffset).assumingMemoryBound(to: Float.self) }
    /// (In) standardiser means and M2, Welford.
    var standardMean: UnsafeMutablePointer<Double> { (core + layout.meanOffset).assumingMemoryBound(to: Double.self) }
    var standardM2: UnsafeMutablePointer<Double> { (core + layout.m2Offset).assumingMemoryBound(to: Double.self) }
    /// (O) the last forecast published, in the stream's units (when the layout keeps it).
    var published: UnsafeMutablePointer<Float> { (core + layout.publishedOffset).assumingMemoryBound(to: Float.self) }
    /// Feature `j`'s combiner state.
    func combinerState(_ j: Int) -> UnsafeMutablePointer<Double> {
        (core + layout.combinerOffset).assumingMemoryBound(to: Double.self) + j * ForecastCombiner.stateSize
    }
    /// Scorer `i`'s anomaly state.
    func anomalyState(_ i: Int) -> UnsafeMutablePointer<Double> {
        (core + layout.anomalyOffset).assumingMemoryBound(to: Double.self) + 1 + i * AnomalyScorer.stateSize
    }
    /// Steps whose anomaly score reached the alert level (scores on only).
    public var anomalyAlerts: UInt64 {
        get { layout.anomalyScorers > 0 ? UInt64(core.load(fromByteOffset: layout.anomalyOffset, as: Double.self)) : 0 }
        nonmutating set { if layout.anomalyScorers > 0 { core.storeBytes(of: Double(newValue), toByteOffset: layout.anomalyOffset, as: Double.self) } }
    }

    /// Whether the stream has a learning window in use.
    public var hasWindow: Bool { windowBase != nil && flags.contains(.windowInUse) }

    /// The learning window, initialised on first use (nil when the layout has none).
    public var window: TrainingWindow? {
        guard let windowBase, let w = layout.window else { return nil }
        let view = TrainingWindow(layout: w, base: windowBase)
        if !flags.contains(.windowInUse) {
            view.initialize()
            flags.insert(.windowInUse)
        }
        return view
    }

    /// The window if in use, without initialising it.
    public var windowIfInUse: TrainingWindow? {
        guard hasWindow, let windowBase, let w = layout.window else { return nil }
        return TrainingWindow(layout: w, base: windowBase)
    }

    // MARK: Lifecycle

    /// A new stream: everything zero, created and seen `now`; the window block is left untouched
    /// until the stream first learns.
    public func initialize(now: Double) {
        RecordSlab.zero(core, count: layout.coreBytes)
        createdAt = now
        lastSeen = now
        flags = .fresh
    }

    /// RESET (or a gap under `on-gap reset`): zero state, no prediction pending, empty window,
    /// fresh statistics. Sequence numbering, step and loss counts and times are kept.
    public func resetState() {
        state.update(repeating: 0, count: layout.architecture.stateSize)
        flags = flags.intersection([.windowInUse, .announceNew, .anySeq])
        windowIfInUse?.clear()
        standardCount = 0
        standardMean.update(repeating: 0, count: layout.standardizedInputs)
        standardM2.update(repeating: 0, count: layout.standardizedInputs)
        // The combiner and the scorers start over with the state (a zero state is a new one);
        // the alert count is a statistic and stays.
        (core + layout.publishedOffset).initializeMemory(as: UInt8.self, repeating: 0, count: layout.forecastBytes)
        for i in 0..<layout.anomalyScorers { anomalyState(i).update(repeating: 0, count: AnomalyScorer.stateSize) }
        // A text stream's context counts are what it has learnt, like the weights; only the
        // history starts over.
        if let t = textContext { TextContextModel.resetHistory(t) }
    }

    /// A gap in the sequence: the last prediction is not scored or learnt against the first input
    /// after it, and the window restarts; the recurrent state carries on.
    public func breakSequence() {
        var f = flags
        f.remove(.hasPrediction)
        f.remove(.previousLearnable)
        flags = f
        windowIfInUse?.markBroken()
        if let t = textContext { TextContextModel.resetHistory(t) }
    }

    /// The text context model's memory (nil when the layout has none).
    public var textContext: UnsafeMutableRawPointer? { layout.textBuckets > 0 ? core + layout.textOffset : nil }
}
