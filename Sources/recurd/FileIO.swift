import Foundation

/// Whole-file reads and atomic writes for the command-line tools.
enum FileIO {
    static func read(_ path: String, what: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
                throw CLIError("\(path): cannot read the \(what)\(isDirectory.boolValue ? " (it is a directory)" : " (permission denied?)")")
            }
            throw CLIError("\(path): no such \(what) file")
        }
        return [UInt8](data)
    }

    /// Writes via a temporary file and rename, so a reader never sees a half-written file.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        do {
            try Data(bytes).write(to: url, options: .atomic)
        } catch {
            throw CLIError("\(path): cannot write: \(error.localizedDescription)")
        }
    }
}
