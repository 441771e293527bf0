import Foundation
import Logging
import Synchronization
import Testing
@testable import RecurdDaemon

/// The daemon's log lines as journald and log shippers read them.
@Suite struct LogControlTests {
    /// Collects the lines a `LogControl` writes.
    final class Lines: Sendable {
        private let lines = Mutex<[String]>([])
        var all: [String] { lines.withLock { $0 } }
        func append(_ line: String) { lines.withLock { $0.append(line) } }
    }

    @Test func textUnderJournaldStartsWithTheSyslogPriority() {
        let lines = Lines()
        let control = LogControl(level: .info, format: .text, environment: ["JOURNAL_STREAM": "8:1234"], sink: lines.append)
        let log = control.logger()
        log.warning("bad message", metadata: ["stream": "s1", "bytes": "12"])
        log.error("store failed")
        log.info("serving")
        log.debug("not shown at info")
        #expect(lines.all == ["<4>warning recurd: bad message bytes=12 stream=s1", "<3>error recurd: store failed", "<6>info recurd: serving"])
    }

    /// A stream key is the sender's text: a newline in it must not start a line of its own, which
    /// journald would read at the priority the sender wrote after it.
    @Test func controlCharactersInTextLogsAreEscaped() {
        let lines = Lines()
        let control = LogControl(level: .info, format: .text, environment: ["JOURNAL_STREAM": "8:1234"], sink: lines.append)
        control.logger().warning("unknown field 'a\nb'", metadata: ["stream": "k\n<0>forged\r\t\u{1b}[31m"])
        #expect(lines.all == [#"<4>warning recurd: unknown field 'a\nb' stream=k\n<0>forged\r\t\u{1b}[31m"#])
    }

    @Test func textOutsideJournaldStartsWithTheTime() throws {
        let lines = Lines()
        LogControl(level: .info, format: .text, environment: [:], sink: lines.append).logger().notice("up")
        let line = try #require(lines.all.first)
        #expect(line.hasSuffix(" notice recurd: up") && line.hasPrefix("20"), "\(line)")
    }

    @Test func jsonLinesCarryNumbersAsNumbersAndNamesAsStrings() throws {
        let lines = Lines()
        let control = LogControl(level: .info, format: .json, environment: ["JOURNAL_STREAM": "8:1234"], sink: lines.append)
        control.logger().warning("dropped", metadata: ["stream": "42", "messages": "17", "version": "3", "bytes": "-5", "ratio": "0.25",
                                                        "hidden": "[64, 64]", "error": "7", "file": "/tmp/x",
                                                        "producers": "3", "trainers": "all producers", "checksum": "007"])
        let line = try #require(lines.all.first)
        #expect(!line.hasPrefix("<"), "JSON lines carry no priority prefix: \(line)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["level"] as? String == "warning" && object["message"] as? String == "dropped" && object["logger"] as? String == "recurd")
        #expect(object["stream"] as? String == "42" && object["error"] as? String == "7" && object["file"] as? String == "/tmp/x")
        #expect(object["hidden"] as? String == "[64, 64]")
        #expect(object["messages"] as? Int == 17 && object["version"] as? Int == 3 && object["bytes"] as? Int == -5)
        #expect(object["ratio"] as? Double == 0.25)
        #expect(object["producers"] as? Int == 3 && object["trainers"] as? String == "all producers" && object["checksum"] as? String == "007")
        #expect(line.contains("\"messages\":17") && line.contains("\"stream\":\"42\""), "\(line)")
        #expect(line.contains("\"file\":\"/tmp/x\""), "paths keep their slashes: \(line)")
        #expect((object["time"] as? String).flatMap { try? Date($0, strategy: .iso8601) } != nil, "\(line)")
    }

    @Test func theLevelChangesForEveryLogger() {
        let lines = Lines()
        let control = LogControl(level: .warning, format: .text, environment: ["JOURNAL_STREAM": "1:1"], sink: lines.append)
        let log = control.logger()
        log.info("hidden")
        control.level = .debug
        log.debug("shown")
        #expect(lines.all == ["<7>debug recurd: shown"])
    }
}
