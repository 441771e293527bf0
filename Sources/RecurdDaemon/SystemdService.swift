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
        let (notifier, handle) = (notifier, handle)
        // The sleep ends at a graceful shutdown: services stop in reverse order, each awaited,
        // and this one comes before the serving loop, whose stop would otherwise wait up to 5 s.
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { break }
                var message = "STATUS=\(handle.status)"
                // Only a turning serving loop keeps the watchdog fed.
                if notifier.watchdogInterval != nil && handle.isLoopAlive { message += "\nWATCHDOG=1" }
                notifier.notify(message)
            }
        }
        notifier.notify("STOPPING=1")
    }
}
