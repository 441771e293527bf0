import RecurdData
import RecurdModelFile
import RecurdNumerics

/// What `run` and `fit` share: loading a model, a recorded stream, and checking they fit.
enum ModelLoading {
    static func loadModel(_ path: String) throws -> ModelFile {
        let bytes = try FileIO.read(path, what: "model")
        do {
            return try ModelFile.decode(bytes, file: path)
        } catch {
            throw CLIError(error.forUser)
        }
    }

    /// Reads `path` as `format` (csv or text; by default from the model's input kind).
    static func loadStream(_ path: String, format: StreamFormat?, columns: [Int]?, for architecture: ModelArchitecture) throws -> RecordedStream {
        let bytes = try FileIO.read(path, what: "input")
        let chosen = format ?? (architecture.input == .features(size: architecture.input.layerInputSize) ? .csv : .text)
        let stream: RecordedStream
        switch chosen {
        case .csv:
            do { stream = try CSVReader.read(bytes, columns: columns) } catch { throw CLIError("\(path): \(error.description)") }
        case .text:
            if columns != nil { throw CLIError("--columns applies to CSV input only") }
            stream = TextReader.read(bytes)
        }
        try check(stream, from: path, against: architecture.input)
        guard stream.count > 0 else { throw CLIError("\(path): the input has no steps") }
        return stream
    }

    /// Refuses a recorded stream the model cannot take (`run`, and `publish` against the
    /// daemon's model), saying why.
    static func check(_ stream: RecordedStream, from path: String, against input: InputKind) throws {
        switch (stream, input) {
        case (.features(_, let width, let names), .features(let size)):
            guard width == size else {
                throw CLIError("\(path): \(width) feature column\(width == 1 ? "" : "s") (\(names.count > 8 ? names.prefix(8).joined(separator: ", ") + ", … \(names.count - 8) more" : names.joined(separator: ", "))) but the model takes \(size) input\(size == 1 ? "" : "s"); choose columns with --columns")
            }
        case (.tokens(let ids), .tokens(let vocabulary, _)):
            if let i = ids.firstIndex(where: { Int($0) >= vocabulary }) {
                throw CLIError("\(path): byte offset \(i): token \(ids[i]) is outside the model's vocabulary of \(vocabulary)")
            }
        case (.features, .tokens):
            throw CLIError("\(path): the model takes tokens (text) but the input is CSV features; use --format text")
        case (.tokens, .features):
            throw CLIError("\(path): the model takes feature vectors but the input is text; use --format csv")
        }
    }
}

enum StreamFormat: String, CaseIterable, Sendable {
    case csv
    case text
}
