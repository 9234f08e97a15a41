import CProcess
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Process-group spawning, exit watching and `/proc` reading for local workloads.
enum Processes {
    struct SpawnError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// Starts `argv` in a new process group (its own leader), with `environment`, in
    /// `directory`, stdout and stderr appended to `logPath`.
    static func spawn(_ argv: [String], environment: [String: String], directory: String, logPath: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of the server's (its listening socket, the database) reaches the child.
        setpoint_spawn_addclosefrom(&actions, 3)
        setpoint_spawn_addchdir(&actions, directory)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attr, 0)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attr, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)

        let args = argv.map { strdup($0) } + [nil]
        let env = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            args.forEach { free($0) }
            env.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attr, args, env)
        guard rc == 0 else { throw SpawnError(message: "cannot start \(argv[0]): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// The kernel's start time of a process (`/proc/<pid>/stat` field 22), to tell a process
    /// from a later one that reused its pid.
    static func startTime(_ pid: pid_t) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command name: state is field 3, so starttime (22) is index 19.
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }

    static func isAlive(_ pid: pid_t, startedAt: UInt64?) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        if let startedAt, let now = startTime(pid), now != startedAt { return false }
        // A zombie has exited.
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")"), stat[stat.index(after: close)...].dropFirst().first == "Z" {
            return false
        }
        return true
    }

    /// Blocks until `pid` exits (children and adopted processes alike, through a pidfd), then
    /// reaps it if it is our child; returns the wait status when known.
    static func waitForExit(_ pid: pid_t) -> Int32? {
        let fd = setpoint_pidfd_open(pid)
        if fd >= 0 {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while poll(&p, 1, -1) < 0 && errno == EINTR {}
            close(fd)
        } else {
            // No pidfd (old kernel): a child can still be waited for.
            var status: Int32 = 0
            if waitpid(pid, &status, 0) == pid { return status }
            return nil
        }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { return status }
        return nil
    }

    /// Kills what is left of a process group and waits (up to `timeout`) until it is gone, so
    /// that "exited" is reported only once nothing of the workload runs any more.
    static func killGroup(_ pgid: pid_t, timeout: TimeInterval = 2) {
        let deadline = Date().addingTimeInterval(timeout)
        while kill(-pgid, SIGKILL) == 0, groupHasLiveMembers(pgid) {
            if Date() > deadline { return }
            usleep(5_000)
        }
    }

    /// Whether a process of the group is still running (zombies waiting to be reaped by
    /// someone else do not count).
    static func groupHasLiveMembers(_ pgid: pid_t) -> Bool {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return false }
        for entry in entries {
            guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // fields[0] = state, fields[2] = pgrp
            if fields.count > 2, Int32(fields[2]) == pgid, fields[0] != "Z" { return true }
        }
        return false
    }

    /// Processes whose environment carries `SETPOINT_WORKLOAD=<id>`.
    static func marked(workload id: String) -> [pid_t] {
        let marker = Array("SETPOINT_WORKLOAD=\(id)".utf8)
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap(Int32.init).filter { pid in
            guard let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            return env.split(separator: 0).contains { Array($0) == marker }
        }
    }

    /// Exit status as a shell reports it: the code, or 128 + the signal.
    static func exitCode(fromWaitStatus status: Int32) -> Int32 {
        let signal = status & 0x7f
        if signal == 0 { return (status >> 8) & 0xff }
        return 128 + signal
    }
}
