/// A user-facing failure: ArgumentParser prints it as one `Error:` line and exits with status 1.
struct CLIError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}
