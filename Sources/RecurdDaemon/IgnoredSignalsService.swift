import Logging
import ServiceLifecycle
import UnixSignals

/// SIGUSR1, SIGUSR2 and SIGALRM: by default each ends a process on the spot, so one sent by
/// mistake (a log rotator's habit, a stray `kill -USR1`) would have cost every change since the
/// last checkpoint and store write. recurd gives them no meaning: each is logged and otherwise
/// ignored, and SIGTERM remains the way to stop.
struct IgnoredSignalsService: Service {
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sigusr1, .sigusr2, .sigalrm)
        for await signal in signals.cancelOnGracefulShutdown() {
            logger.warning("\(signal) ignored: SIGTERM stops recurd (checkpointing first), SIGHUP reloads its settings")
        }
    }
}
