import RecurdData
import Testing

@Suite struct CSVReaderTests {
    func read(_ text: String, columns: [Int]? = nil) throws -> RecordedStream {
        try CSVReader.read(Array(text.utf8), columns: columns)
    }

    @Test func nabFormatGivesOneFeature() throws {
        let s = try read("timestamp,value\n2013-12-02 21:15:00,73.967\n2013-12-02 21:20:00,74.935\n")
        #expect(s == .features(values: [73.967, 74.935], width: 1, columns: ["value"]))
    }

    @Test func numericFirstRowIsData() throws {
        let s = try read("1,2\r\n3,4\r\n\n")
        #expect(s == .features(values: [1, 2, 3, 4], width: 2, columns: ["column 0", "column 1"]))
    }

    @Test func chosenColumns() throws {
        let s = try read("t,a,b\nx,1,2\ny,3,4\n", columns: [2, 1])
        #expect(s == .features(values: [2, 1, 4, 3], width: 2, columns: ["b", "a"]))
    }

    /// A spreadsheet's UTF-8 byte-order mark is skipped: the first row stays data (it was taken
    /// for a header and lost), and a header's first name reads clean.
    @Test func aByteOrderMarkIsSkipped() throws {
        #expect(try read("\u{FEFF}1,2\n3,4\n") == .features(values: [1, 2, 3, 4], width: 2, columns: ["column 0", "column 1"]))
        #expect(try read("\u{FEFF}a,b\n1,2\n") == .features(values: [1, 2], width: 2, columns: ["a", "b"]))
    }

    @Test func errorsSayWhere() {
        #expect(throws: RecordedStreamError("line 3, column 1: 'abc' is not a number")) { try read("t,v\n1,2\n3,abc\n") }
        #expect(throws: RecordedStreamError("line 2, column 1: 'nan' is not finite")) { try read("t,v\nx,nan\n") }
        #expect(throws: RecordedStreamError("line 3, column 1: '1e308' is outside float32's range (±3.4e38)")) { try read("t,v\nx,1\ny,1e308\n") }
        #expect(throws: RecordedStreamError("line 3 has 1 column; line 2, the first data row, has 2")) { try read("a,b\n1,2\n3\n") }
        // A longer row too: its extra value would be left out without a word.
        #expect(throws: RecordedStreamError("line 2 has 3 columns; line 1, the first data row, has 2")) { try read("1,2\n3,4,5\n5,6\n") }
        #expect(throws: RecordedStreamError("column 5 does not exist: line 1 has 2 columns (0-based)")) { try read("a,b\n1,2\n", columns: [5]) }
        #expect(throws: RecordedStreamError("the CSV has no rows")) { try read("\n\n") }
    }
}
