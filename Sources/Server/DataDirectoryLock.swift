import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One server per data directory: an exclusive `flock` on `<data-dir>/server.lock`, which holds
/// the owner's PID. The kernel releases it when the process ends, `kill -9` included, so a
/// stale file never blocks a restart. A second server on the same directory would adopt the
/// first one's workloads and replace its API socket; it is refused instead, naming the PID.
public final class DataDirectoryLock: Sendable {
    public struct Held: Error, CustomStringConvertible {
        public var description: String
    }

    private let descriptor: Int32

    private init(descriptor: Int32) { self.descriptor = descriptor }

    /// Creates the data directory when it is missing and checks it can be used, with errors
    /// that name it, say why and what to do (not a Foundation error dump).
    public static func prepare(_ directory: String) throws {
        var info = stat()
        if stat(directory, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                throw Held(description: "the data directory \(directory) is a file, not a directory: give --data-dir a directory (or move the file away)")
            }
        } else {
            // Each missing ancestor in turn, so the error names the one that cannot be made.
            var missing: [String] = []
            var path = directory
            while !path.isEmpty, path != "/", stat(path, &info) != 0 {
                missing.append(path)
                path = (path as NSString).deletingLastPathComponent
            }
            for path in missing.reversed() where mkdir(path, 0o700) != 0 && errno != EEXIST {
                let reason = errno == ENOTDIR ? "a part of it is a file" : String(cString: strerror(errno))
                throw Held(description: "cannot create the data directory \(directory) (at \(path)): \(reason): create it, or give another --data-dir")
            }
        }
        if access(directory, W_OK) != 0 {
            throw Held(description: "the data directory \(directory) is not writable: \(String(cString: strerror(errno))): make it writable, or give another --data-dir")
        }
    }

    public static func acquire(_ directory: String) throws -> DataDirectoryLock {
        let path = directory + "/server.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw Held(description: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let reason = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            guard reason == EWOULDBLOCK else {
                throw Held(description: "cannot lock \(path): \(String(cString: strerror(reason)))")
            }
            let pid = String(decoding: buffer.prefix(max(0, count)), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw Held(description: "the data directory \(directory) is in use by another setpoint server (pid \(pid.isEmpty ? "unknown" : pid)): stop it, or give this server another --data-dir")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        return DataDirectoryLock(descriptor: fd)
    }

    /// Gives the directory up (also done by the kernel when the process ends).
    public func release() {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
