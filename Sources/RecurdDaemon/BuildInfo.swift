/// What `recurd --version` prints and `/metrics` reports as `recurd_build_info`.
public enum BuildInfo {
    /// The release; the Python package (Clients/python/pyproject.toml) carries the same number.
    public static let version = "0.4.0"
    /// The wire protocol (DESIGN §4) and model file format (DESIGN §2) this build speaks.
    public static let wireProtocol = 1
    public static let modelFormat = "recurd/1"

    public static var description: String {
        "recurd \(version) (wire protocol v\(wireProtocol), model format \(modelFormat))"
    }
}
