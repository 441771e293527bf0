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

    /// Reads `path` as `format` (csv, text or tokens; by default from the model's input: csv for
    /// features, text for a vocabulary of 256 bytes, token ids for any other vocabulary).
    static func loadStream(_ path: String, format: StreamFormat?, columns: [Int]?, for architecture: ModelArchitecture) throws -> RecordedStream {
        let bytes = try FileIO.read(path, what: "input")
        let chosen = format ?? defaultFormat(for: architecture.input)
        if chosen != .csv, columns != nil { throw CLIError("--columns applies to CSV input only") }
        let stream = try read(bytes, from: path, format: chosen, columns: columns, vocabulary: architecture.input.vocabulary)
        try check(stream, from: path, format: chosen, against: architecture.input)
        guard stream.count > 0 else { throw CLIError("\(path): the input has no steps") }
        return stream
    }

    /// A recorded stream's bytes as `format` (`run`, `fit` and `publish`); token ids must be below
    /// `vocabulary` when it is known. Errors name the file and the place in it.
    static func read(_ bytes: [UInt8], from path: String, format: StreamFormat, columns: [Int]?, vocabulary: Int?) throws -> RecordedStream {
        do throws(RecordedStreamError) {
            switch format {
            case .csv: return try CSVReader.read(bytes, columns: columns)
            case .text: return TextReader.read(bytes)
            case .tokens: return try TokenReader.read(bytes, vocabulary: vocabulary)
            }
        } catch {
            throw CLIError("\(path): \(error.description)")
        }
    }

    /// Refuses a recorded stream the model cannot take (`run`, and `publish` against the
    /// daemon's model), saying why. Token ids were checked against the vocabulary as they were
    /// read (with their line and place).
    static func check(_ stream: RecordedStream, from path: String, format: StreamFormat, against input: InputKind) throws {
        switch (stream, input) {
        case (.features(_, let width, let names), .features(let size)):
            guard width == size else {
                throw CLIError("\(path): \(width) feature column\(width == 1 ? "" : "s") (\(names.count > 8 ? names.prefix(8).joined(separator: ", ") + ", … \(names.count - 8) more" : names.joined(separator: ", "))) but the model takes \(size) input\(size == 1 ? "" : "s"); choose columns with --columns")
            }
        case (.tokens(let ids), .tokens(let vocabulary, _)):
            if let i = ids.firstIndex(where: { Int($0) >= vocabulary }) {
                // Token ids were checked against the vocabulary as they were read: this is text.
                throw CLIError("\(path): byte offset \(i): byte \(ids[i]) is outside the model's vocabulary of \(vocabulary); a file of token ids takes --format tokens")
            }
        case (.features, .tokens(let vocabulary, _)):
            throw CLIError("\(path): the model takes tokens but the input is CSV features; use "
                + (vocabulary == 256 ? "--format text (one token per byte) or --format tokens (token ids)" : "--format tokens (token ids)"))
        case (.tokens, .features):
            throw CLIError("\(path): the model takes feature vectors but the input is \(format == .tokens ? "token ids" : "text"); use --format csv")
        }
    }
}

extension ModelLoading {
    static func defaultFormat(for input: InputKind) -> StreamFormat {
        switch input.vocabulary {
        case nil: .csv
        case 256?: .text
        default: .tokens
        }
    }
}

/// How a recorded stream is written: CSV feature rows, text (one token per byte), or token ids
/// (whole numbers separated by commas, spaces or line breaks).
enum StreamFormat: String, CaseIterable, Sendable {
    case csv
    case text
    case tokens
}
