/// A failed SQLite call: the operation, the database file and SQLite's own message.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let operation: String
    public let message: String
    public let file: String

    public var description: String { "\(file): \(operation): \(message) (SQLite code \(code))" }

    /// Disk full, read-only or I/O trouble: conditions that may clear, so the store retries.
    public var isTransientDiskFault: Bool {
        let primary = code & 0xFF
        return primary == 13 /* FULL */ || primary == 8 /* READONLY */ || primary == 10 /* IOERR */ || primary == 14 /* CANTOPEN */
            || primary == 5 /* BUSY */ || primary == 6 /* LOCKED */
    }
}
