import ServiceLifecycle

/// Tells systemd when recurd is ready, how it is doing, that it is alive, and that it stops.
struct SystemdService: Service {
    let notifier: SystemdNotifier
    let handle: DaemonHandle
    let ready: ReadySignal

    func run() async throws {
        guard (try? await ready.wait()) != nil else { return }
        notifier.notify("READY=1\nSTATUS=\(handle.status)")
        let interval = min(notifier.watchdogInterval ?? .seconds(5), .seconds(5))
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: interval)
            var message = "STATUS=\(handle.status)"
            // Only a turning serving loop keeps the watchdog fed.
            if notifier.watchdogInterval != nil && handle.isLoopAlive { message += "\nWATCHDOG=1" }
            notifier.notify(message)
        }
        notifier.notify("STOPPING=1")
    }
}
