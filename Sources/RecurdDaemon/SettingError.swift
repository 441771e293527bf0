/// A setting that cannot be applied: which one and why.
public struct SettingError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
