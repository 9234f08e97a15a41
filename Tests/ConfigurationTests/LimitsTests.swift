import Testing
@testable import SetpointConfiguration

/// What a file may be: a byte order mark is skipped (as PyYAML and dstack do), and a file over
/// the size limit is refused with a located error before it is parsed.
@Suite struct LimitsTests {
    @Test func aByteOrderMarkIsSkipped() throws {
        let documents = ConfigurationParser.parse(bytes: [0xEF, 0xBB, 0xBF] + Array(baseService.utf8))
        #expect(documents.count == 1)
        let config = try #require(documents.first?.configuration)
        #expect(config.name == "svc")
    }

    @Test func aFileOverTheLimitIsRefusedWhereTheLimitIsReached() throws {
        // 5 MB of env values, as the hostile trial sent.
        var text = baseService + "env:\n"
        var i = 0
        while text.utf8.count < 5_000_000 {
            text += "  - VAR_\(i)=\(String(repeating: "x", count: 200))\n"
            i += 1
        }
        let documents = ConfigurationParser.parse(text)
        let issue = try #require(documents.first?.issues.first)
        #expect(documents.count == 1 && documents[0].issues.count == 1)
        #expect(issue.message.contains("over the 262144-byte (256 KiB) limit"), "\(issue.message)")
        let line = try #require(issue.location?.line)
        // The limit falls within the env lines (each ~210 bytes).
        #expect(line > 1000 && line < 1300, "line \(line)")
        // Just under the limit is fine.
        var small = baseService + "env:\n"
        while small.utf8.count < ConfigurationParser.maxBytes - 300 { small += "  - V\(small.utf8.count)=y\n" }
        #expect(ConfigurationParser.parse(small).first?.configuration != nil)
    }
}

/// Error messages a person can read: what was written, where it is, no library internals, no
/// 20 KB echoes.
@Suite struct ReadableErrorTests {
    @Test func anOversizedIntegerIsShownAsWritten() throws {
        let issue = try #require(issues("type: service\nname: svc\ncommands: [x]\nport: 100000000000000000000000\n").first)
        #expect(issue.message == "integer `100000000000000000000000` is too large", "\(issue.message)")
    }

    @Test func aControlCharacterIsLocatedOnItsLine() throws {
        let documents = ConfigurationParser.parse(bytes: Array("type: service\nname: svc\ncommands: [x]\nport: 8000\nenv:\n  - A=".utf8) + [0] + Array("b\n".utf8))
        let issue = try #require(documents.first?.issues.first)
        #expect(issue.location == SourceLocation(line: 6, column: 7), "\(String(describing: issue.location))")
        #expect(issue.message.contains("control character U+0000"), "\(issue.message)")
    }

    @Test func deepNestingSaysWhatItMeans() throws {
        let text = "type: service\nx: " + String(repeating: "[", count: 2000) + String(repeating: "]", count: 2000) + "\n"
        let issue = try #require(ConfigurationParser.parse(text).first?.issues.first)
        #expect(issue.message == "invalid YAML: the document nests deeper than 1000 levels", "\(issue.message)")
        #expect(!issue.message.contains("yaml_set_max_nest_level"))
    }

    @Test func longValuesAreCutInMessages() throws {
        let issue = try #require(issues("type: service\nname: svc\ncommands: [x]\nport: " + String(repeating: "y", count: 20000) + "\n").first)
        #expect(issue.message.count < 300, "\(issue.message.count) characters")
        #expect(issue.message.contains("…"))
    }
}
