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
