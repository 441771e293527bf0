import ArgumentParser
import Foundation
import RecurdDaemon
import ZeroMQ

struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Write a new CURVE key pair: NAME.key (public, to share) and NAME.key_secret (mode 0600).",
        discussion: """
        The files are zcert certificates, the format pyzmq's zmq.auth and czmq use. The daemon's own pair: give \
        `serve --curve-server-cert NAME.key_secret` and hand NAME.key to clients (`--server-key`). A client's pair: copy \
        NAME.key into the daemon's curve-clients folder for its role (producers/, consumers/, operators/, trainers/) and \
        keep NAME.key_secret (`--curve-cert`).
        """)

    @Argument(help: "Name of the key pair (file names and the certificate's name).") var name: String
    @Option(help: "Folder to write into.") var dir = "."
    @Flag(help: "Replace existing files.") var force = false

    func validate() throws {
        guard !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else { throw ValidationError("NAME is a plain file name, e.g. sensor-7") }
    }

    func run() throws {
        guard ZMQCurve.isAvailable else { throw CLIError("this libzmq (\(ZMQContext.libraryVersion)) was built without CURVE") }
        let folder = URL(fileURLWithPath: dir)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let publicPath = folder.appendingPathComponent("\(name).key").path, secretPath = folder.appendingPathComponent("\(name).key_secret").path
        for p in [publicPath, secretPath] where FileManager.default.fileExists(atPath: p) && !force {
            throw CLIError("\(p) exists; pass --force to replace it (and every client that trusted the old key must be given the new one)")
        }
        let pair = try ZMQCurve.keyPair()
        let cert = CurveCertificate(publicKey: pair.publicKey, secretKey: pair.secretKey)
        let created = ISO8601DateFormatter().string(from: Date())
        try FileIO.writeSecret(Array(cert.text(name: name, secret: true, created: created).utf8), to: secretPath)
        try FileIO.writeAtomically(Array(cert.text(name: name, secret: false, created: created).utf8), to: publicPath)
        print("wrote \(publicPath) (public key \(pair.publicKey)) and \(secretPath) (mode 0600)")
    }
}
