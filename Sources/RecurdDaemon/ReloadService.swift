import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// SIGHUP: read the settings again (defaults, config file, flags), apply what can change live
/// and log what waits for a restart; tell systemd `RELOADING=1` (with `MONOTONIC_USEC`) first and
/// `READY=1` once applied. Streams, the model and the store are untouched.
struct ReloadService: Service {
    let source: SettingsSource
    let handle: DaemonHandle
    let notifier: SystemdNotifier
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            await reload()
        }
    }

    private func reload() async {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        notifier.notify("RELOADING=1\nMONOTONIC_USEC=\(UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000)")
        logger.notice("SIGHUP: reloading the settings", metadata: ["config": "\(source.configFile ?? "none")"])
        do {
            let configuration = try source.resolve()
            let generation = handle.requestReload(configuration)
            while !handle.hasApplied(generation) && !handle.stopRequested { try? await Task.sleep(for: .milliseconds(20)) }
            logger.notice("settings reloaded")
        } catch {
            logger.error("SIGHUP: the settings cannot be read; keeping the running ones", metadata: ["error": "\(error)"])
        }
        notifier.notify("READY=1\nSTATUS=\(handle.status)")
    }
}
