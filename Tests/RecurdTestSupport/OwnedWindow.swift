import RecurdNumerics

/// A `TrainingWindow` in memory of its own (numerics tests; records own theirs in the daemon).
public final class OwnedWindow {
    public let window: TrainingWindow
    private let memory: UnsafeMutableRawPointer

    public init(_ layout: WindowLayout) {
        memory = .allocate(byteCount: layout.byteCount, alignment: 16)
        window = TrainingWindow(layout: layout, base: memory)
        window.initialize()
    }

    deinit { memory.deallocate() }

    /// Explicit targets: keeps the state (if needed) and appends (x, y); returns whether due.
    @discardableResult
    public func append(x: [Float], y: [Float], state: [Float]) -> Bool {
        state.withUnsafeBufferPointer { window.saveState($0.baseAddress!) }
        return x.withUnsafeBufferPointer { xp in
            y.withUnsafeBufferPointer { yp in window.append(features: xp.baseAddress!, token: 0, targetValues: yp.baseAddress!, targetClass: 0) }
        }
    }
}
