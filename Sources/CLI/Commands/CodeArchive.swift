import Foundation

/// The code `apply` uploads: the files of the configuration's Git repository (tracked and
/// untracked, not ignored — uncommitted changes included), or of its directory when it is not
/// in a repository, as a gzipped tar.
enum CodeUpload {
    /// Compressed size above which `apply` refuses to upload (the server's limit).
    static let limit = 64 << 20

    struct Archive {
        var data: Data
        var root: String
        var files: Int
    }

    static func archive(forConfiguration file: String) throws -> Archive {
        let (root, git) = root(forConfiguration: file)
        return try archive(root: root, git: git)
    }

    /// Where the configuration's code is: its repository's top level, or its directory.
    static func root(forConfiguration file: String) -> (root: String, git: Bool) {
        let dir = (URL(fileURLWithPath: file).standardizedFileURL.deletingLastPathComponent()).path
        if let top = try? run(["git", "-C", dir, "rev-parse", "--show-toplevel"]).trimmingCharacters(in: .whitespacesAndNewlines),
           !top.isEmpty {
            return (top, true)
        }
        return (dir, false)
    }

    static func archive(root: String, git: Bool) throws -> Archive {
        let dir = root
        var files: [String]
        if git {
            let top = root
            let listed = try run(["git", "-C", top, "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
            files = listed.split(separator: "\0").map(String.init)
        } else {
            files = []
            let walker = FileManager.default.enumerator(atPath: dir)
            while let entry = walker?.nextObject() as? String {
                if entry == ".git" || entry.hasPrefix(".git/") { walker?.skipDescendants(); continue }
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: dir + "/" + entry, isDirectory: &isDir), !isDir.boolValue { files.append(entry) }
            }
        }
        // Deleted in the working tree but still in the index: not part of what runs. The
        // configurations are not the code either: a change to one service's file does not
        // roll the others (the server reads configurations from the request, not the archive).
        files = files.filter { FileManager.default.fileExists(atPath: root + "/" + $0) && !isConfiguration($0) }.sorted()
        let input = Data(files.joined(separator: "\0").utf8)
        let data = try runData(["tar", "--no-recursion", "-czf", "-", "-C", root, "--null", "-T", "-"], input: input)
        guard data.count <= limit else {
            throw UsageError(message: "the code in \(root) is \(data.count >> 20) MB compressed, over the \(limit >> 20) MB upload limit: leave large files out with .gitignore")
        }
        return Archive(data: data, root: root, files: files.count)
    }

    /// `*.dstack.yml` and `.dstack.yml`, as `apply -f DIR` finds them.
    static func isConfiguration(_ path: String) -> Bool {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        return name.hasSuffix(".dstack.yml")
    }

    static func run(_ args: [String]) throws -> String {
        String(decoding: try runData(args, input: nil), as: UTF8.self)
    }

    /// Runs `args` with `input` on its standard input and returns its standard output. Only one
    /// pipe is read: the input comes from a temporary file and the errors go to one, so neither
    /// side can block on a full pipe whatever their sizes (a file list of thousands of names
    /// written to `tar` before its output was read used to hang both).
    static func runData(_ args: [String], input: Data?) throws -> Data {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let inputPath = scratch.appendingPathComponent("stdin").path
        let errorPath = scratch.appendingPathComponent("stderr").path
        guard FileManager.default.createFile(atPath: inputPath, contents: input ?? Data()),
              FileManager.default.createFile(atPath: errorPath, contents: nil) else {
            throw UsageError(message: "cannot write temporary files in \(scratch.path)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle(forWritingAtPath: errorPath)
        p.standardInput = FileHandle(forReadingAtPath: inputPath)
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let errors = (try? String(contentsOfFile: errorPath, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            throw UsageError(message: "`\(args.joined(separator: " "))` failed\(errors.isEmpty ? "" : ": " + String(errors.prefix(2000)))")
        }
        return data
    }
}
