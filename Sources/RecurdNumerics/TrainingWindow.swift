/// One stream's TBPTT window (DESIGN §3.2), read and written in place in memory laid out by a
/// `WindowLayout`. A value type over a pointer: copying it does not copy the window.
///
/// Implied (next-step) targets: `restart(input:)` begins a sequence at the latest input;
/// `pushTarget(_:)` appends the entry whose input is the latest input and whose target is the
/// new one. Explicit targets: `append(input:target:)`. Either way the caller first offers the
/// state before the coming entry's step to `saveState(_:)`, which keeps it only when that entry
/// can start a window at an update.
public struct TrainingWindow {
    public let layout: WindowLayout
    public let base: UnsafeMutableRawPointer

    public init(layout: WindowLayout, base: UnsafeMutableRawPointer) {
        self.layout = layout
        self.base = base
    }

    // MARK: Header

    /// Entries appended since the last clear.
    public private(set) var appended: UInt64 {
        get { base.load(as: UInt64.self) }
        nonmutating set { base.storeBytes(of: newValue, as: UInt64.self) }
    }
    /// Ring position of the oldest input.
    private var start: Int {
        get { Int(base.load(fromByteOffset: 8, as: UInt32.self)) }
        nonmutating set { base.storeBytes(of: UInt32(newValue), toByteOffset: 8, as: UInt32.self) }
    }
    /// Inputs held (implied: entries + 1 once started; explicit: entries).
    private var length: Int {
        get { Int(base.load(fromByteOffset: 12, as: UInt32.self)) }
        nonmutating set { base.storeBytes(of: UInt32(newValue), toByteOffset: 12, as: UInt32.self) }
    }
    /// Entries added since the last update.
    public var pending: Int {
        get { Int(base.load(fromByteOffset: 16, as: UInt32.self)) }
        nonmutating set { base.storeBytes(of: UInt32(newValue), toByteOffset: 16, as: UInt32.self) }
    }
    /// Explicit targets: the next entry does not follow the last one (a step that could not be
    /// learnt from came between), so it starts the window afresh.
    private var broken: Bool {
        get { base.load(fromByteOffset: 20, as: UInt32.self) != 0 }
        nonmutating set { base.storeBytes(of: newValue ? 1 : 0, toByteOffset: 20, as: UInt32.self) }
    }
    /// Saved states written since the last clear (the next one goes to slot `kept % savedStates`).
    private var kept: Int {
        get { Int(base.load(fromByteOffset: 24, as: UInt32.self)) }
        nonmutating set { base.storeBytes(of: UInt32(truncatingIfNeeded: newValue), toByteOffset: 24, as: UInt32.self) }
    }

    /// Entries held (≤ k2).
    public var count: Int { layout.impliedTargets ? max(length - 1, 0) : length }

    /// Implied targets: whether the sequence has a latest input to extend.
    public var isStarted: Bool { length >= 1 }

    /// Whether an update is due (k1 entries since the last one).
    public var isDue: Bool { pending >= layout.k1 }

    // MARK: Storage

    @inline(__always) private func inputBytes(_ ring: Int) -> UnsafeMutableRawPointer { base + layout.inputsOffset + ring * layout.inputStride }
    @inline(__always) private func targetBytes(_ ring: Int) -> UnsafeMutableRawPointer { base + layout.targetsOffset + ring * layout.targetStride }
    @inline(__always) private func label(_ ring: Int) -> UInt8 { base.load(fromByteOffset: layout.labelsOffset + ring, as: UInt8.self) }
    @inline(__always) private func setLabel(_ ring: Int, _ on: Bool) { base.storeBytes(of: on ? 1 : 0, toByteOffset: layout.labelsOffset + ring, as: UInt8.self) }
    @inline(__always) private func tag(_ slot: Int) -> UInt64 { base.load(fromByteOffset: layout.tagsOffset + slot * 8, as: UInt64.self) }
    @inline(__always) private func setTag(_ slot: Int, _ a: UInt64) { base.storeBytes(of: a, toByteOffset: layout.tagsOffset + slot * 8, as: UInt64.self) }
    @inline(__always) private func state(_ slot: Int) -> UnsafeMutablePointer<Float> {
        (base + layout.statesOffset + slot * layout.stateSize * 4).assumingMemoryBound(to: Float.self)
    }

    private func writeInput(_ ring: Int, features: UnsafePointer<Float>?, token: Int32) {
        if layout.tokenInput {
            inputBytes(ring).storeBytes(of: token, as: Int32.self)
        } else {
            inputBytes(ring).assumingMemoryBound(to: Float.self).update(from: features!, count: layout.inputSize)
        }
    }

    // MARK: Changes

    /// Empties the window (new stream, RESET, a break in the sequence).
    public func clear() {
        appended = 0
        start = 0
        length = 0
        pending = 0
        broken = false
        kept = 0
        for s in 0..<layout.savedStates { setTag(s, 0) }
    }

    /// Zeroes the whole block (a new record), which is also a clear window.
    public func initialize() { base.initializeMemory(as: UInt8.self, repeating: 0, count: layout.byteCount) }

    /// Explicit targets: the next entry starts a new window (the steps are no longer consecutive).
    public func markBroken() { broken = true }

    /// Keeps `stateBefore` (s_{t−1}) for the entry the next append adds, if that entry can start
    /// a window at an update. Call after any due update of the entries already appended has
    /// been taken, and before the append.
    public func saveState(_ stateBefore: UnsafePointer<Float>) {
        let next: UInt64 = layout.impliedTargets || !broken ? appended + 1 : 1
        guard layout.canStartWindow(next) else { return }
        // Explicit and broken: the entry restarts the window, so clear it now (append would
        // clear it after this state is kept, and the window would have none to start from).
        if next == 1 && (appended != 0 || broken) { clear() }
        let slot = kept % layout.savedStates
        state(slot).update(from: stateBefore, count: layout.stateSize)
        setTag(slot, next)
    }

    /// Implied targets: starts the sequence afresh at input x (no entries yet).
    public func restart(features: UnsafePointer<Float>?, token: Int32) {
        clear()
        writeInput(0, features: features, token: token)
        length = 1
    }

    /// Implied targets: appends the entry (latest input → x) and makes x the latest input.
    /// Returns whether an update became due. The sequence must have been started.
    @discardableResult
    public func pushTarget(features: UnsafePointer<Float>?, token: Int32) -> Bool {
        precondition(layout.impliedTargets && length >= 1)
        let cap = layout.inputCapacity
        if length == cap {
            start = (start + 1) % cap
        } else {
            length += 1
        }
        writeInput((start + length - 1) % cap, features: features, token: token)
        return noteAppended()
    }

    /// Explicit targets: appends (x, y), or x alone when `labelled` is false (a learnable step
    /// sent without a target: part of the run, no loss of its own). Returns whether an update
    /// became due: k1 entries since the last one, at least one labelled among its loss steps
    /// (with none, the count starts again and no update is made).
    @discardableResult
    public func append(features: UnsafePointer<Float>?, token: Int32, targetValues: UnsafePointer<Float>?, targetClass: Int32,
                       labelled: Bool = true) -> Bool {
        precondition(!layout.impliedTargets)
        if broken { clear() }
        let cap = layout.inputCapacity
        let ring: Int
        if length == cap {
            ring = start
            start = (start + 1) % cap
        } else {
            ring = (start + length) % cap
            length += 1
        }
        writeInput(ring, features: features, token: token)
        setLabel(ring, labelled)
        if !labelled {
            targetBytes(ring).initializeMemory(as: UInt8.self, repeating: 0, count: layout.targetStride)
        } else if layout.classTarget {
            targetBytes(ring).storeBytes(of: targetClass, as: Int32.self)
        } else {
            targetBytes(ring).assumingMemoryBound(to: Float.self).update(from: targetValues!, count: layout.targetSize)
        }
        guard noteAppended() else { return false }
        if labels(inLast: min(layout.k1, count)) == 0 {
            pending = 0
            return false
        }
        return true
    }

    private func noteAppended() -> Bool {
        appended += 1
        if layout.canStartWindow(appended) { kept += 1 }
        pending += 1
        return pending == layout.k1
    }

    /// Explicit targets: how many of the newest `n` entries have a target.
    private func labels(inLast n: Int) -> Int {
        let cap = layout.inputCapacity
        var labelled = 0
        for i in (length - n)..<length where label((start + i) % cap) != 0 { labelled += 1 }
        return labelled
    }

    /// Copies `other`'s bytes (same layout): the snapshot a background trainer takes.
    public func copy(from other: TrainingWindow) {
        precondition(other.layout == layout)
        base.copyMemory(from: other.base, byteCount: layout.byteCount)
    }

    // MARK: Compact form

    /// The window without its unused room, for storage: the header, the held inputs (and
    /// targets) oldest first, and each saved state with its tag (empty slots as a zero tag only).
    /// A young window is a few hundred bytes; a full one the size of its block.
    public func encodeCompact(into out: inout [UInt8]) {
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        // Bit 1 of the broken word: the entries' labels follow their targets (a partly labelled
        // window; a fully labelled one is stored as it was before labels existed).
        let withLabels = !layout.impliedTargets && labels(inLast: length) < length
        put(appended)
        put(UInt32(length))
        put(UInt32(pending))
        put(UInt32(broken ? 1 : 0) | (withLabels ? 2 : 0))
        put(UInt32(kept))
        let cap = layout.inputCapacity
        for i in 0..<length { out.append(contentsOf: UnsafeRawBufferPointer(start: inputBytes((start + i) % cap), count: layout.inputStride)) }
        if !layout.impliedTargets {
            for i in 0..<length { out.append(contentsOf: UnsafeRawBufferPointer(start: targetBytes((start + i) % cap), count: layout.targetStride)) }
        }
        if withLabels {
            for i in 0..<length { out.append(label((start + i) % cap)) }
        }
        for slot in 0..<layout.savedStates {
            let t = tag(slot)
            put(t)
            if t != 0 { out.append(contentsOf: UnsafeRawBufferPointer(start: UnsafeRawPointer(state(slot)), count: layout.stateSize * 4)) }
        }
    }

    /// Rebuilds the window from `encodeCompact`'s bytes; returns the bytes read, or nil when they
    /// do not fit this layout (the window is then left clear).
    public func decodeCompact(_ b: UnsafeRawBufferPointer) -> Int? {
        initialize()
        var at = 0
        func take<T: FixedWidthInteger>(_: T.Type) -> T? {
            guard at + MemoryLayout<T>.size <= b.count else { return nil }
            defer { at += MemoryLayout<T>.size }
            return T(littleEndian: b.loadUnaligned(fromByteOffset: at, as: T.self))
        }
        guard let a = take(UInt64.self), let n = take(UInt32.self), let p = take(UInt32.self), let br = take(UInt32.self), br <= 3, let k = take(UInt32.self),
              Int(n) <= layout.inputCapacity else { initialize(); return nil }
        // What a damaged record could hold and training would trust: more entries than were
        // appended, more pending than appended, ids outside the model.
        let entries = layout.impliedTargets ? max(Int(n) - 1, 0) : Int(n)
        guard a >= UInt64(entries), UInt64(p) <= a else { initialize(); return nil }
        let inputs = Int(n) * layout.inputStride, targets = layout.impliedTargets ? 0 : Int(n) * layout.targetStride
        guard at + inputs + targets <= b.count else { initialize(); return nil }
        if layout.tokenInput {
            for i in 0..<Int(n) where Int(b.loadUnaligned(fromByteOffset: at + 4 * i, as: UInt32.self)) >= layout.tokenLimit { initialize(); return nil }
        }
        if targets > 0 && layout.classTarget {
            for i in 0..<Int(n) where Int(b.loadUnaligned(fromByteOffset: at + inputs + 4 * i, as: UInt32.self)) >= layout.classLimit { initialize(); return nil }
        }
        (base + layout.inputsOffset).copyMemory(from: b.baseAddress! + at, byteCount: inputs)
        at += inputs
        if targets > 0 { (base + layout.targetsOffset).copyMemory(from: b.baseAddress! + at, byteCount: targets) }
        at += targets
        if !layout.impliedTargets {
            if br & 2 != 0 {
                guard at + Int(n) <= b.count else { initialize(); return nil }
                for i in 0..<Int(n) {
                    let l = b[at + i]
                    guard l <= 1 else { initialize(); return nil }
                    setLabel(i, l == 1)
                }
                at += Int(n)
            } else {
                for i in 0..<Int(n) { setLabel(i, true) }
            }
        } else if br & 2 != 0 {
            initialize()
            return nil
        }
        for slot in 0..<layout.savedStates {
            guard let t = take(UInt64.self) else { initialize(); return nil }
            setTag(slot, t)
            if t != 0 {
                let bytes = layout.stateSize * 4
                guard at + bytes <= b.count else { initialize(); return nil }
                UnsafeMutableRawPointer(state(slot)).copyMemory(from: b.baseAddress! + at, byteCount: bytes)
                at += bytes
            }
        }
        appended = a
        start = 0
        length = Int(n)
        pending = Int(p)
        broken = br & 1 != 0
        kept = Int(k)
        return at
    }

    // MARK: Training

    /// The saved state of the window's first entry; nil only for a window read back damaged
    /// (a due window's first entry always has one).
    func initialState() -> UnsafePointer<Float>? {
        let first = appended &- UInt64(count) &+ 1
        for s in 0..<layout.savedStates where tag(s) == first { return UnsafePointer(state(s)) }
        return nil
    }

    /// Loads the window (oldest entry first) into window `w` of `engine`, which has `begin` called.
    func load(into engine: WindowEngine, window w: Int) {
        if let s = initialState() {
            engine.setInitialState(window: w, from: s)
        } else {
            // Damaged: a zero state rather than a read of whatever memory (this module has no
            // runtime checks).
            let zeros = [Float](repeating: 0, count: layout.stateSize)
            zeros.withUnsafeBufferPointer { engine.setInitialState(window: w, from: $0.baseAddress!) }
        }
        let cap = layout.inputCapacity
        for i in 0..<count {
            let r = (start + i) % cap
            if layout.tokenInput {
                engine.setToken(step: i, window: w, inputBytes(r).load(as: Int32.self))
            } else {
                engine.setFeatures(step: i, window: w, inputBytes(r).assumingMemoryBound(to: Float.self))
            }
            if layout.impliedTargets {
                let next = (r + 1) % cap
                if layout.classTarget {
                    engine.setTarget(step: i, window: w, classIndex: inputBytes(next).load(as: Int32.self))
                } else {
                    engine.setTarget(step: i, window: w, values: inputBytes(next).assumingMemoryBound(to: Float.self))
                }
            } else if label(r) == 0 {
                engine.setNoTarget(step: i, window: w)
            } else if layout.classTarget {
                engine.setTarget(step: i, window: w, classIndex: targetBytes(r).load(as: Int32.self))
            } else {
                engine.setTarget(step: i, window: w, values: targetBytes(r).assumingMemoryBound(to: Float.self))
            }
        }
    }
}
