import SetpointConfiguration
import Foundation

/// Finding configuration files and validating them.
public enum ConfigurationFiles {
    /// Files named by `paths`: files as given, directories searched recursively (sorted) for
    /// `*.dstack.yml` and `.dstack.yml`, skipping `.git` and `.build` folders.
    public static func discover(_ paths: [String]) throws -> [String] {
        var result: [String] = []
        for path in paths {
            var info = stat()
            guard stat(path, &info) == 0 else {
                throw UsageError(message: "\(path): no such file or directory")
            }
            if info.st_mode & S_IFMT != S_IFDIR {
                result.append(path)
                continue
            }
            var found: [String] = []
            try walk(path, prefix: path == "." ? "" : (path.hasSuffix("/") ? path : path + "/"), into: &found)
            result.append(contentsOf: found.sorted())
        }
        return result
    }

    private static func walk(_ directory: String, prefix: String, into found: inout [String]) throws {
        guard let dir = opendir(directory) else {
            throw UsageError(message: "\(directory): cannot read the directory")
        }
        defer { closedir(dir) }
        var subdirectories: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name == "." || name == ".." { continue }
            var type = entry.pointee.d_type
            let full = prefix + name
            if type == UInt8(DT_UNKNOWN) || type == UInt8(DT_LNK) {
                var info = stat()
                if stat(full.isEmpty ? name : full, &info) == 0 {
                    type = info.st_mode & S_IFMT == S_IFDIR ? UInt8(DT_DIR) : UInt8(DT_REG)
                }
            }
            if type == UInt8(DT_DIR) {
                if name != ".git" && name != ".build" { subdirectories.append(name) }
            } else if name.hasSuffix(".dstack.yml") {
                found.append(full)
            }
        }
        for sub in subdirectories {
            try walk(prefix.isEmpty ? sub : prefix + sub, prefix: prefix + sub + "/", into: &found)
        }
    }

    /// Reads a whole file, `nil` when it cannot be read.
    static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        var capacity = max(Int(info.st_size), 0) + 1
        var bytes = [UInt8](repeating: 0, count: capacity)
        var used = 0
        while true {
            if used == capacity {
                capacity *= 2
                bytes.append(contentsOf: repeatElement(0, count: capacity - bytes.count))
            }
            let n = bytes.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress! + used, capacity - used) }
            if n < 0 { return nil }
            if n == 0 { break }
            used += n
        }
        bytes.removeLast(bytes.count - used)
        return bytes
    }

    /// Validates every document of one file; an unreadable file gets one failed result.
    public static func validate(_ file: String) -> [ValidationResult] {
        func failed(_ message: String) -> [ValidationResult] {
            [ValidationResult(file: file, document: nil, source: [], outcome: .failure(ConfigurationErrors([
                ConfigurationIssue(path: "", location: nil, message: message),
            ])))]
        }
        guard let bytes = read(file) else { return failed("cannot read the file") }
        guard String(validating: bytes, as: UTF8.self) != nil else { return failed("the file is not UTF-8 text") }
        let documents = ConfigurationParser.parse(bytes: bytes)
        return documents.map { doc in
            ValidationResult(file: file, document: documents.count > 1 ? doc.index : nil, source: bytes, outcome: doc.result,
                             warnings: doc.warnings)
        }
    }
}
