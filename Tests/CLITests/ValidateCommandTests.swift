import Foundation
import Testing

/// `setpoint validate` end to end: the real binary, real files, exit codes and output formats.
@Suite struct ValidateCommandTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    @Test func validExamplesExitZero() throws {
        let result = try Setpoint.run(["validate", "-f", Self.fixtures.appendingPathComponent("valid").path])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("6 valid, 0 invalid"))
    }

    @Test(arguments: [
        ("gpu-two-memories", "service.resources.gpu", 6, "memory twice"),
        ("image-and-python", "service.python", 3, "mutually exclusive"),
        ("no-commands-no-image", "service", 1, "either `commands` or `image` must be set"),
        ("port-out-of-range", "service.port", 4, "out of range"),
        ("range-without-scaling", "service.replicas", 6, "specify `scaling`"),
        ("unknown-property", "service.replica", 5, "did you mean `replicas`"),
    ])
    func invalidExamplesNameTheRule(name: String, path: String, line: Int, fragment: String) throws {
        let file = Self.fixtures.appendingPathComponent("invalid/\(name).dstack.yml").path
        let result = try Setpoint.run(["validate", "-f", file, "-o", "json"])
        #expect(result.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect(object["ok"] as? Bool == false)
        let errors = try #require(object["errors"] as? [[String: Any]])
        #expect(errors.count == 1)
        #expect(errors[0]["path"] as? String == path)
        #expect(errors[0]["line"] as? Int == line)
        #expect((errors[0]["message"] as? String)?.contains(fragment) == true)

        let text = try Setpoint.run(["validate", "-f", file])
        #expect(text.status == 1)
        #expect(text.output.contains("\(file):\(line):"))
        #expect(text.output.contains("^"))
        #expect(!text.output.contains("\u{1B}["), "no colours when not on a terminal")
    }

    /// The seed's own copies, when the workplace's shared/ folder sits beside the repository.
    @Test func sharedExamplesWhenPresent() throws {
        let shared = Self.fixtures.appendingPathComponent("../../../../shared/examples").standardized
        guard FileManager.default.fileExists(atPath: shared.path) else { return }
        #expect(try Setpoint.run(["validate", "-f", shared.appendingPathComponent("valid").path]).status == 0)
        let invalid = try FileManager.default.contentsOfDirectory(atPath: shared.appendingPathComponent("invalid").path)
        for name in invalid {
            #expect(try Setpoint.run(["validate", "-f", shared.appendingPathComponent("invalid/\(name)").path]).status == 1)
        }
    }

    @Test func directoriesMultipleDocumentsAndEmptyFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-validate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "type: service\nimage: x\nport: 80\n---\ntype: service\nimage: x\nport: 0\n".write(to: dir.appendingPathComponent("sub/two.dstack.yml"), atomically: true, encoding: .utf8)
        try "".write(to: dir.appendingPathComponent("empty.dstack.yml"), atomically: true, encoding: .utf8)
        try "type: service\nimage: x\nport: 80\n".write(to: dir.appendingPathComponent(".dstack.yml"), atomically: true, encoding: .utf8)
        try "not: considered\n".write(to: dir.appendingPathComponent("other.yml"), atomically: true, encoding: .utf8)
        let result = try Setpoint.run(["validate", "-f", dir.path, "-o", "json"])
        #expect(result.status == 1)
        let lines = result.output.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(lines.count == 4)
        let byFile = lines.compactMap { $0 }.map { (($0["file"] as? String).map { URL(fileURLWithPath: $0).lastPathComponent } ?? "", $0["ok"] as? Bool ?? true) }
        #expect(byFile.map(\.0) == [".dstack.yml", "empty.dstack.yml", "two.dstack.yml", "two.dstack.yml"])
        #expect(byFile.map(\.1) == [true, false, true, false])
    }

    @Test func usageErrorsExitTwo() throws {
        #expect(try Setpoint.run(["validate", "-f", "/nonexistent/x.dstack.yml"]).status == 2)
        #expect(try Setpoint.run(["validate", "--bogus"]).status == 2)
        #expect(try Setpoint.run(["validate", "-o", "xml"]).status == 2)
        let help = try Setpoint.run(["validate", "--help"])
        #expect(help.status == 0)
        #expect(help.output.contains("--output"))
    }

    @Test func secretsStayOutOfOutput() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-secret-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("s.dstack.yml")
        try "type: service\nimage: x\nport: 80\nregistry_auth:\n  username: u\n  password: [hunter2secret]\nenv:\n  - 9BAD=topsecretvalue\n".write(to: file, atomically: true, encoding: .utf8)
        for format in ["text", "json"] {
            let result = try Setpoint.run(["validate", "-f", file.path, "-o", format])
            #expect(result.status == 1)
            #expect(!result.output.contains("hunter2secret") && !result.output.contains("topsecretvalue"), "\(result.output)")
        }
    }
}

/// Runs the built `setpoint` binary (next to the test bundle) and collects its output.
enum Setpoint {
    struct Result {
        var status: Int32
        var output: String
    }

    static var binary: URL {
        var dir = Bundle.main.bundleURL
        while !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("setpoint").path), dir.path != "/" {
            dir.deleteLastPathComponent()
        }
        return dir.appendingPathComponent("setpoint")
    }

    static func run(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }
}
