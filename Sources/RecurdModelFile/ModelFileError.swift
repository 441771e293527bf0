import SafeTensors

/// Why a model file was refused. `description` names the file and, where there is one, the tensor.
public struct ModelFileError: Error, CustomStringConvertible, Equatable {
    /// The file, as the user named it.
    public let file: String
    /// The tensor or metadata key concerned, if any.
    public let tensor: String?
    public let reason: String
    /// Not a recurd model file at all: no safetensors, or safetensors without recurd's metadata.
    public let foreign: Bool

    public init(file: String, tensor: String? = nil, reason: String, foreign: Bool = false) {
        self.file = file
        self.tensor = tensor
        self.reason = reason
        self.foreign = foreign
    }

    /// `description`, and for a foreign file what to do with it: for the files a user names
    /// (`--model`), not for checkpoints, where it would mislead about a damaged file.
    public var forUser: String {
        foreign ? description + " (damaged, or not a recurd model file: a Keras, PyTorch or ONNX model converts with `python -m recurd.export`)" : description
    }

    public var description: String {
        if let tensor { return "\(file): tensor \(tensor): \(reason)" }
        return "\(file): \(reason)"
    }
}
