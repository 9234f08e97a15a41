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
        let dir = (URL(fileURLWithPath: file).standardizedFileURL.deletingLastPathComponent()).path
        var root = dir
        var files: [String]
        if let top = try? run(["git", "-C", dir, "rev-parse", "--show-toplevel"]).trimmingCharacters(in: .whitespacesAndNewlines),
           !top.isEmpty {
            root = top
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
        // Deleted in the working tree but still in the index: not part of what runs.
        files = files.filter { FileManager.default.fileExists(atPath: root + "/" + $0) }.sorted()
        let input = Data(files.joined(separator: "\0").utf8)
        let data = try runData(["tar", "--no-recursion", "-czf", "-", "-C", root, "--null", "-T", "-"], input: input)
        guard data.count <= limit else {
            throw UsageError(message: "the code in \(root) is \(data.count >> 20) MB compressed, over the \(limit >> 20) MB upload limit: leave large files out with .gitignore")
        }
        return Archive(data: data, root: root, files: files.count)
    }

    static func run(_ args: [String]) throws -> String {
        String(decoding: try runData(args, input: nil), as: UTF8.self)
    }

    static func runData(_ args: [String], input: Data?) throws -> Data {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let stdin = Pipe()
        if input != nil { p.standardInput = stdin } else { p.standardInput = FileHandle(forReadingAtPath: "/dev/null") }
        try p.run()
        if let input {
            stdin.fileHandleForWriting.write(input)
            try? stdin.fileHandleForWriting.close()
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        _ = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw UsageError(message: "`\(args.joined(separator: " "))` failed") }
        return data
    }
}
