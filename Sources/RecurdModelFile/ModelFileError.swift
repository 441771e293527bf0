import SafeTensors

/// Why a model file was refused. `description` names the file and, where there is one, the tensor.
public struct ModelFileError: Error, CustomStringConvertible, Equatable {
    /// The file, as the user named it.
    public let file: String
    /// The tensor or metadata key concerned, if any.
    public let tensor: String?
    public let reason: String

    public init(file: String, tensor: String? = nil, reason: String) {
        self.file = file
        self.tensor = tensor
        self.reason = reason
    }

    public var description: String {
        if let tensor { return "\(file): tensor \(tensor): \(reason)" }
        return "\(file): \(reason)"
    }
}
