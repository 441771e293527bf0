import Foundation
import Synchronization

/// What other threads may do with the serving loop: ask it to stop or to apply new settings,
/// and read its health and status line. Everything here is thread-safe; the loop itself is
/// owned by its thread.
public final class DaemonHandle: Sendable {
    private let stopFlag = Atomic<Bool>(false)
    private let heartbeatNanoseconds = Atomic<UInt64>(0)
    private let outputUnbound = Atomic<Bool>(false)
    private let stateDirectoryLost = Atomic<Bool>(false)
    private let storeStalled = Atomic<Bool>(false)
    private let statusLine = Mutex("starting")
    private let reloads = Mutex<[(generation: UInt64, configuration: ServeConfiguration)]>([])
    private let appliedGeneration = Atomic<UInt64>(0)
    private let nextGeneration = Atomic<UInt64>(1)
    let wake = WakeSignal()
    /// How long the serving loop may go without turning before it counts as stalled.
    static let stallSeconds: Double = 5

    /// Asks the loop to stop after the work in flight (SIGTERM).
    public func requestStop() {
        stopFlag.store(true, ordering: .relaxed)
        wake.signal()
    }

    var stopRequested: Bool { stopFlag.load(ordering: .relaxed) }

    /// The loop turned.
    func beat() { heartbeatNanoseconds.store(Clock.nanoseconds, ordering: .relaxed) }

    /// The output endpoint is not bound (a re-bind after a consumer key's removal has not
    /// succeeded yet): nobody can receive predictions.
    func setOutputUnbound(_ unbound: Bool) { outputUnbound.store(unbound, ordering: .relaxed) }
    var isOutputUnbound: Bool { outputUnbound.load(ordering: .relaxed) }

    /// Whether the loop turned within the last `stallSeconds`: what the systemd watchdog is fed
    /// on (a restart helps a stuck loop, not an output waiting for its address).
    public var isLoopAlive: Bool {
        let beat = heartbeatNanoseconds.load(ordering: .relaxed)
        return beat != 0 && Double(Clock.nanoseconds &- beat) / 1e9 < Self.stallSeconds
    }

    /// The state directory was deleted or replaced while running (see `StateDirectory.problem`).
    func setStateDirectoryLost(_ lost: Bool) { stateDirectoryLost.store(lost, ordering: .relaxed) }
    var isStateDirectoryLost: Bool { stateDirectoryLost.load(ordering: .relaxed) }

    /// Input has waited for the store without a break for longer than `storeStallSeconds` (a
    /// store thread stuck in a write): the loop turns, but serves nothing.
    func setStoreStalled(_ stalled: Bool) { storeStalled.store(stalled, ordering: .relaxed) }
    var isStoreStalled: Bool { storeStalled.load(ordering: .relaxed) }
    static let storeStallSeconds: Double = 30

    /// `/healthz`: the loop turns, the output is bound, the state directory is in place and the
    /// store is not holding the input back for long.
    public var isHealthy: Bool { isLoopAlive && !isOutputUnbound && !isStateDirectoryLost && !isStoreStalled }

    /// One line for systemd's STATUS=.
    public var status: String { statusLine.withLock { $0 } }
    func setStatus(_ line: String) { statusLine.withLock { $0 = line } }

    /// Hands the loop a new configuration (SIGHUP); returns a generation to wait for.
    func requestReload(_ configuration: ServeConfiguration) -> UInt64 {
        let g = nextGeneration.add(1, ordering: .relaxed).oldValue
        reloads.withLock { $0.append((g, configuration)) }
        wake.signal()
        return g
    }

    /// The newest configuration asked for, if any (older ones are superseded).
    func takeReload() -> (generation: UInt64, configuration: ServeConfiguration)? {
        reloads.withLock { r in
            defer { r.removeAll() }
            return r.last
        }
    }

    func reloadApplied(_ generation: UInt64) { appliedGeneration.store(generation, ordering: .releasing) }

    /// Whether reload `generation` has been applied.
    func hasApplied(_ generation: UInt64) -> Bool { appliedGeneration.load(ordering: .acquiring) >= generation }
}
