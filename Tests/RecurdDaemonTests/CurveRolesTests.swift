import Foundation
import RecurdDaemon
import RecurdTestSupport
import Testing
import ZeroMQ

/// The allow-lists as `--curve-clients DIR` holds them.
@Suite struct CurveRolesTests {
    static func certificate(secret: Bool = false) throws -> (CurveCertificate, String) {
        let pair = try ZMQCurve.keyPair()
        let cert = CurveCertificate(publicKey: pair.publicKey, secretKey: secret ? pair.secretKey : nil)
        return (cert, cert.text(name: "t", secret: secret, created: "2026-12-07T00:00:00Z"))
    }

    /// Only NAME.key files grant: a key renamed to revoke it (x.key.revoked) does not; nor does
    /// a README. A FIFO is skipped without being opened (a read would block on SIGHUP).
    @Test func onlyRegularNAMEkeyFilesGrant() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for role in ["producers", "consumers", "operators"] {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent(role), withIntermediateDirectories: true)
        }
        let producers = dir.appendingPathComponent("producers")
        let (granted, grantedText) = try Self.certificate()
        let (revoked, revokedText) = try Self.certificate()
        try grantedText.write(to: producers.appendingPathComponent("sensor.key"), atomically: true, encoding: .utf8)
        try revokedText.write(to: producers.appendingPathComponent("old.key.revoked"), atomically: true, encoding: .utf8)
        try "who may produce\n".write(to: producers.appendingPathComponent("README"), atomically: true, encoding: .utf8)
        #expect(mkfifo(producers.appendingPathComponent("pipe.key").path, 0o600) == 0)
        var skipped: [String] = []
        let roles = try CurveRoles.load(directory: dir.path, skipped: &skipped)
        #expect(roles.producers == [CurveKey(z85: granted.publicKey)!])
        #expect(!roles.producers.contains(CurveKey(z85: revoked.publicKey)!))
        #expect(skipped.count == 2 && skipped.contains { $0.contains("old.key.revoked") } && skipped.contains { $0.contains("README") }, "\(skipped)")
    }

    /// A certificate written with Windows line endings reads as one written with "\n".
    @Test func crlfCertificatesParse() throws {
        let (cert, text) = try Self.certificate(secret: true)
        let crlf = text.replacingOccurrences(of: "\n", with: "\r\n")
        #expect(try CurveCertificate.parse(crlf, file: "t.key_secret") == cert)
    }
}
