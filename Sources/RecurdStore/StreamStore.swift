/// The stream store (DESIGN §6): every stream's record in one SQLite table, keyed by the stream
/// key, with its key group (DESIGN §7) beside it so whole groups can later move between
/// machines. WAL journal, so a crash (`kill -9`) loses no committed write and never leaves a
/// file that will not open. Used from one thread.
public final class StreamStore {
    public let connection: SQLiteConnection
    public var path: String { connection.path }
    private let insert: SQLiteStatement
    private let select: SQLiteStatement
    private let remove: SQLiteStatement
    private let oldest: SQLiteStatement
    private let pageCount: SQLiteStatement
    private let pageSize: Int64
    /// Rows stored (kept exact: counted at open, then per insert and delete).
    public private(set) var count: Int

    public static let schemaVersion = 3

    /// Opens or creates the store at `path`.
    public init(path: String) throws(SQLiteError) {
        connection = try SQLiteConnection(path: path)
        // synchronous FULL: under WAL, NORMAL syncs the log only at its checkpoints, so a power
        // cut could roll back many flushes, not just the last; commits come in batches, so FULL
        // costs one fsync per batch.
        try connection.execute("""
            PRAGMA page_size = 16384;
            PRAGMA journal_mode = WAL;
            PRAGMA synchronous = FULL;
            PRAGMA cache_size = -16384;
            CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS streams (
                key BLOB NOT NULL UNIQUE,
                key_group INTEGER NOT NULL,
                encoding INTEGER NOT NULL,
                record BLOB NOT NULL
            );
            INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', '\(Self.schemaVersion)');
            """)
        let version = try connection.prepare("SELECT value FROM meta WHERE name = 'schema'")
        var schema = ""
        try? version.query { schema = $0.text(0) }
        guard schema == "\(Self.schemaVersion)" else {
            throw SQLiteError(code: 0, operation: "open", message: "store schema '\(schema)' is not \(Self.schemaVersion)", file: path)
        }
        // A write deletes the old row and inserts a new one, so rowid order is write order and the
        // least recently written rows are the first by rowid (no index needed to trim).
        insert = try connection.prepare("INSERT INTO streams (key, key_group, encoding, record) VALUES (?, ?, ?, ?)")
        select = try connection.prepare("SELECT encoding, record FROM streams WHERE key = ?")
        remove = try connection.prepare("DELETE FROM streams WHERE key = ?")
        oldest = try connection.prepare("SELECT key FROM streams ORDER BY rowid LIMIT ?")
        pageCount = try connection.prepare("PRAGMA page_count")
        let size = try connection.prepare("PRAGMA page_size")
        pageSize = try size.scalar() ?? 4096
        count = Int(try connection.prepare("SELECT COUNT(*) FROM streams").scalar() ?? 0)
    }

    /// Writes (inserts or replaces) records in one transaction. On failure nothing is written.
    public func write(_ rows: [(key: [UInt8], group: Int, record: [UInt8])]) throws(SQLiteError) {
        guard !rows.isEmpty else { return }
        var inserted = 0
        try transaction { () throws(SQLiteError) in
            for row in rows where try put(row.key, group: row.group, record: row.record) { inserted += 1 }
        }
        count += inserted
    }

    /// Returns whether the row is new.
    private func put(_ key: [UInt8], group: Int, record: [UInt8]) throws(SQLiteError) -> Bool {
        var failure: SQLiteError?
        var isNew = false
        let (encoding, stored) = RecordCompression.compress(record)
        key.withUnsafeBytes { k in
            stored.withUnsafeBytes { r in
                do throws(SQLiteError) {
                    try remove.run([.blob(k)])
                    isNew = connection.changes == 0
                    try insert.run([.blob(k), .integer(Int64(group)), .integer(encoding.rawValue), .blob(r)])
                } catch { failure = error }
            }
        }
        if let failure { throw failure }
        return isNew
    }

    /// The record stored for `key`, if any.
    public func load(_ key: [UInt8]) throws(SQLiteError) -> [UInt8]? {
        var out: [UInt8]?
        var failure: SQLiteError?
        key.withUnsafeBytes { k in
            do {
                try select.query([.blob(k)]) { row in
                    guard let encoding = RecordCompression.Encoding(rawValue: row.integer(0)),
                          let record = RecordCompression.decompress(row.blob(1), encoding: encoding) else {
                        throw SQLiteError(code: 0, operation: "load", message: "a stored record does not decompress", file: path)
                    }
                    out = record
                }
            } catch let e as SQLiteError { failure = e } catch {}
        }
        if let failure { throw failure }
        return out
    }

    /// Deletes `keys`' records in one transaction; returns how many existed.
    @discardableResult
    public func delete(_ keys: [[UInt8]]) throws(SQLiteError) -> Int {
        var deleted = 0
        try transaction { () throws(SQLiteError) in
            for key in keys {
                var failure: SQLiteError?
                key.withUnsafeBytes { k in do throws(SQLiteError) { try remove.run([.blob(k)]) } catch { failure = error } }
                if let failure { throw failure }
                deleted += connection.changes
            }
        }
        count -= deleted
        return deleted
    }

    /// Deletes the least recently written rows beyond `limit`; returns their keys.
    public func trim(to limit: Int) throws(SQLiteError) -> [[UInt8]] {
        guard count > limit else { return [] }
        var keys: [[UInt8]] = []
        do { try oldest.query([.integer(Int64(count - limit))]) { keys.append(Array($0.blob(0))) } } catch let e as SQLiteError { throw e } catch {}
        try delete(keys)
        return keys
    }

    /// Calls `body` with every stored key (start-up: the key filter).
    public func forEachKey(_ body: ([UInt8]) -> Void) throws(SQLiteError) {
        let all = try connection.prepare("SELECT key FROM streams")
        do { try all.query { body(Array($0.blob(0))) } } catch let e as SQLiteError { throw e } catch {}
    }

    /// Moves everything in the write-ahead log into the database file and empties the log (a
    /// clean shutdown): the database file then holds the whole store by itself, for backups and
    /// for anyone who copies or inspects it without its `-wal` beside it.
    public func mergeJournal() throws(SQLiteError) {
        try connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// Bytes the database file takes (pages × page size; the WAL is not counted).
    public var bytes: Int64 {
        let pages: Int64? = try? pageCount.scalar()
        return (pages ?? 0) * pageSize
    }

    private func transaction(_ body: () throws(SQLiteError) -> Void) throws(SQLiteError) {
        try connection.execute("BEGIN IMMEDIATE")
        do {
            try body()
            try connection.execute("COMMIT")
        } catch {
            if connection.inTransaction { try? connection.execute("ROLLBACK") }
            throw error
        }
    }
}
