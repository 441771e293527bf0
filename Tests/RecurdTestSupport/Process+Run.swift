import Foundation

/// The result of running a command to completion.
public struct CommandResult: Sendable {
    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }

    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// The built `recurd` binary (beside the test bundle: `swift build` puts both in one folder).
public var recurdBinary: URL {
    let candidates = [
        Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("recurd"),
        Bundle.main.bundleURL.appendingPathComponent("recurd"),
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("recurd"),
        repositoryRoot.appendingPathComponent(".build/debug/recurd"),
    ]
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[candidates.count - 1]
}

/// Runs `recurd` with `arguments` and waits for it.
public func runRecurd(_ arguments: [String], stdin: String? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = recurdBinary
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    if stdin != nil { process.standardInput = Pipe() }
    try process.run()
    // A hung command is killed after 5 minutes rather than spend the CI run's time limit.
    let pid = process.processIdentifier
    let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
    DispatchQueue.global().asyncAfter(deadline: .now() + 300, execute: watchdog)
    defer { watchdog.cancel() }
    // Read both pipes concurrently so a chatty child cannot block on a full pipe.
    nonisolated(unsafe) var errData = Data()
    let reader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
    reader.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    while reader.isExecuting || !reader.isFinished { usleep(1000) }
    return CommandResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
}

/// A fresh temporary directory, removed by the caller when done.
public func temporaryDirectory() -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("recurd-test-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A fresh temporary directory, removed with everything in it when the last reference goes:
/// a suite holds one, and Swift Testing makes a suite instance per test, so each test's files
/// go when it ends instead of piling up in /tmp run after run.
public final class ScratchDirectory: Sendable {
    public let url: URL
    public init() { url = temporaryDirectory() }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Waits until `body` holds or `seconds` pass.
public func eventually(_ seconds: Double, _ body: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    repeat {
        if try body() { return true }
        usleep(50_000)
    } while Date() < deadline
    return false
}
