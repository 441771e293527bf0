import Foundation

/// Who may do what (`--curve-clients DIR`): the public certificates in DIR's role folders.
public struct CurveRoles: Sendable, Equatable {
    /// May connect to the input.
    public var producers: Set<CurveKey>
    /// May subscribe to the output.
    public var consumers: Set<CurveKey>
    /// May use control.
    public var operators: Set<CurveKey>
    /// When DIR has a trainers/ folder: the producers whose steps the model learns from (nil:
    /// every producer's).
    public var trainers: Set<CurveKey>?

    public init(producers: Set<CurveKey> = [], consumers: Set<CurveKey> = [], operators: Set<CurveKey> = [], trainers: Set<CurveKey>? = nil) {
        self.producers = producers
        self.consumers = consumers
        self.operators = operators
        self.trainers = trainers
    }

    /// The ZAP domains the daemon's sockets use, one per role.
    public enum Domain: String, Sendable, CaseIterable {
        case input, output, control
    }

    /// The keys allowed on a domain's socket.
    public func allowed(_ d: Domain) -> Set<CurveKey> {
        switch d {
        case .input: producers
        case .output: consumers
        case .control: operators
        }
    }

    /// Whether a producer's steps may train the model.
    public func trains(_ key: CurveKey) -> Bool { trainers?.contains(key) ?? true }

    /// Reads DIR: producers/, consumers/ and operators/ must exist (they may be empty);
    /// trainers/ is optional. Every regular file named NAME.key in them is read as a certificate
    /// (its public key counts); hidden files, editors' backups (~) and secret certificates
    /// (NAME.key_secret, which `recurd keygen --dir` writes beside the public one) are skipped
    /// quietly. Any other file (a README, a `.key.revoked`, an unreadable file, a secret key under
    /// another name) grants nothing and is named in `skipped` with why: refusing the whole folder
    /// for it would keep the old lists, and a key removed beside it would keep its access.
    public static func load(directory: String, skipped: inout [String]) throws(DaemonError) -> CurveRoles {
        func folder(_ name: String, required: Bool) throws(DaemonError) -> Set<CurveKey>? {
            let path = URL(fileURLWithPath: directory).appendingPathComponent(name).path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                // fileExists also says no when the parent cannot be searched: say that instead.
                if !FileManager.default.fileExists(atPath: directory) {
                    throw DaemonError("curve-clients \(directory): no such folder")
                }
                if !FileManager.default.isExecutableFile(atPath: directory) {
                    throw DaemonError("curve-clients \(directory): cannot be read (permissions)")
                }
                if required { throw DaemonError("curve-clients \(directory): no \(name)/ folder (it holds the public certificates of the \(name))") }
                return nil
            }
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: path).sorted() } catch {
                throw DaemonError("curve-clients \(path): cannot list it (\(error.localizedDescription))")
            }
            var keys: Set<CurveKey> = []
            for n in names where !n.hasPrefix(".") && !n.hasSuffix("~") && !n.hasSuffix("_secret") {
                let file = URL(fileURLWithPath: path).appendingPathComponent(n).path
                // Only regular files: reading a FIFO would block the serving thread on SIGHUP.
                var info = stat()
                guard stat(file, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
                // Only NAME.key, as pyzmq's load_certificates: renaming a key's file (x.key.revoked,
                // x.key.bak) is how many revoke it, and must not leave it granted.
                guard n.hasSuffix(".key") else {
                    skipped.append("\(file) is not named NAME.key, so it grants nothing (rename it to grant it)")
                    continue
                }
                let cert: CurveCertificate
                do throws(DaemonError) { cert = try CurveCertificate.load(file) } catch {
                    skipped.append("\(error.description); it grants nothing")
                    continue
                }
                guard cert.secretKey == nil else {
                    skipped.append("\(file) holds a secret key: give the daemon clients' public certificates only (NAME.key, not NAME.key_secret); it grants nothing")
                    continue
                }
                if let k = CurveKey(z85: cert.publicKey) { keys.insert(k) }
            }
            return keys
        }
        return CurveRoles(producers: try folder("producers", required: true)!, consumers: try folder("consumers", required: true)!,
                          operators: try folder("operators", required: true)!, trainers: try folder("trainers", required: false))
    }
}
