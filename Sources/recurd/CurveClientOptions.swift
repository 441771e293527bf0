import ArgumentParser
import Foundation
import RecurdDaemon
import ZeroMQ

/// `--curve-cert FILE --server-key FILE|KEY`: the client side of a daemon with CURVE on.
struct CurveClientOptions: ParsableArguments {
    @Option(name: .customLong("curve-cert"), help: "This client's secret certificate (NAME.key_secret from `recurd keygen` or pyzmq), for a daemon with CURVE on.")
    var curveCert: String?
    @Option(name: .customLong("server-key"), help: "The daemon's public certificate (its NAME.key), or its public key as 40 Z85 characters.")
    var serverKey: String?

    func validate() throws {
        if (curveCert == nil) != (serverKey == nil) {
            throw ValidationError("--curve-cert and --server-key go together: this client's secret certificate and the daemon's public key")
        }
    }

    /// Makes `socket` a CURVE client when the options are given.
    func apply(to socket: ZMQSocket) throws {
        guard let curveCert, let serverKey else { return }
        let mine: CurveCertificate
        do { mine = try CurveCertificate.load(curveCert) } catch { throw CLIError("\(error)") }
        guard let secret = mine.secretKey.flatMap(ZMQCurve.decode), let pub = ZMQCurve.decode(mine.publicKey) else {
            throw CLIError("\(curveCert): no secret-key line; --curve-cert is this client's secret certificate (NAME.key_secret)")
        }
        let server: [UInt8]
        // A file first: a 40-character path (/etc/recurd/keys/server01.key) can decode as Z85.
        if !FileManager.default.fileExists(atPath: serverKey), let key = ZMQCurve.decode(serverKey) {
            server = key
        } else {
            let cert: CurveCertificate
            do { cert = try CurveCertificate.load(serverKey) } catch { throw CLIError("--server-key: \(error)") }
            guard let key = ZMQCurve.decode(cert.publicKey) else { throw CLIError("\(serverKey): no public key") }
            server = key
        }
        try socket.setCurveClient(serverKey: server, publicKey: pub, secretKey: secret)
    }
}
