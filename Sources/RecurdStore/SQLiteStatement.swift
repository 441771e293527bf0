import CSQLite

/// A prepared statement, reset after every use.
public final class SQLiteStatement {
    let connection: SQLiteConnection
    let handle: OpaquePointer
    let sql: String

    init(connection: SQLiteConnection, handle: OpaquePointer, sql: String) {
        self.connection = connection
        self.handle = handle
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    /// A value to bind.
    public enum Value {
        case integer(Int64)
        case real(Double)
        case text(String)
        case blob(UnsafeRawBufferPointer)
        case null
    }

    private func bind(_ values: [Value]) throws(SQLiteError) {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        for (i, v) in values.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32
            switch v {
            case .integer(let n): rc = sqlite3_bind_int64(handle, index, n)
            case .real(let d): rc = sqlite3_bind_double(handle, index, d)
            case .text(let s): rc = sqlite3_bind_text(handle, index, s, -1, recurd_sqlite_transient())
            case .blob(let b): rc = sqlite3_bind_blob(handle, index, b.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(b.count), recurd_sqlite_transient())
            case .null: rc = sqlite3_bind_null(handle, index)
            }
            guard rc == SQLITE_OK else { throw connection.error(rc, "bind \(sql)") }
        }
    }

    /// Runs the statement to completion with `values` bound.
    public func run(_ values: [Value] = []) throws(SQLiteError) {
        try bind(values)
        defer { sqlite3_reset(handle) }
        while true {
            let rc = sqlite3_step(handle)
            if rc == SQLITE_DONE { return }
            if rc != SQLITE_ROW { throw connection.error(rc, sql) }
        }
    }

    /// Runs the statement and calls `row` for each result row (the row is valid only inside the call).
    public func query(_ values: [Value] = [], row: (SQLiteRow) throws -> Void) throws {
        try bind(values)
        defer { sqlite3_reset(handle) }
        while true {
            let rc = sqlite3_step(handle)
            if rc == SQLITE_DONE { return }
            guard rc == SQLITE_ROW else { throw connection.error(rc, sql) }
            try row(SQLiteRow(handle: handle))
        }
    }

    /// The first row's first column as an integer, if any row.
    public func scalar(_ values: [Value] = []) throws(SQLiteError) -> Int64? {
        try bind(values)
        defer { sqlite3_reset(handle) }
        let rc = sqlite3_step(handle)
        if rc == SQLITE_DONE { return nil }
        guard rc == SQLITE_ROW else { throw connection.error(rc, sql) }
        return sqlite3_column_int64(handle, 0)
    }
}
