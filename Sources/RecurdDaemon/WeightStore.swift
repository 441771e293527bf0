import RecurdNumerics
import Synchronization

/// One published version of the weights; never modified after publication.
final class WeightSnapshot: Sendable {
    /// Updates applied to produce these weights.
    let version: UInt64
    let weights: FloatBuffer

    init(version: UInt64, weights: FloatBuffer) {
        self.version = version
        self.weights = weights
    }
}

/// The serving path's view of the weights: the trainer publishes whole new snapshots and the
/// serving thread pins one per cycle, so a prediction never mixes two versions. The lock guards
/// a reference swap only; neither side ever waits on the other's work.
final class WeightStore: Sendable {
    private let current: Mutex<WeightSnapshot>

    init(_ initial: WeightSnapshot) { current = Mutex(initial) }

    func load() -> WeightSnapshot { current.withLock { $0 } }

    func publish(_ snapshot: WeightSnapshot) {
        var replaced = snapshot
        current.withLock { swap(&$0, &replaced) }
        // `replaced`, the previous snapshot, is released here, after the lock: freeing its
        // weights is work the serving thread must never wait for.
    }
}
