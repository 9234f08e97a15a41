import APIClient
import ArgumentParser
import Foundation
import Model

/// Follows one run over the server's watch stream (no polling) until `verdict` says it is done:
/// prints each new progress line, ends with an error when the run is `Stalled` or `Failed`,
/// and reconnects when the stream breaks off (a restarting server: `ResumingWatch`), giving up
/// after 10 s of an unreachable server.
struct RunFollower {
    enum Verdict {
        case waiting
        case done
    }

    let name: String
    let client: APIClient
    let style: TextStyle

    func follow(_ verdict: (API.Run) -> Verdict) async throws -> API.Run {
        struct Finished: Error { var run: API.Run }
        var last = ""
        do {
            try await ResumingWatch(client: client, kinds: ["run"], patience: 10).run { update in
                let events: [API.WatchEvent]
                switch update {
                case .listed(let items, _): events = items
                case .changed(let event): events = [event]
                }
                for event in events where event.kind == RunKind.name && event.name == name {
                    guard event.type != "deleted" else {
                        Terminal.standardError.write(style.red("Run \(name) was deleted while following it.") + "\n")
                        throw ExitCode(1)
                    }
                    guard let run = event.run else { continue }
                    let line = "\(run.phaseText) — \(run.readyText) ready\(run.status.message.isEmpty ? "" : " (\(run.status.message))")"
                    if line != last {
                        Terminal.standardOutput.write(line + "\n")
                        last = line
                    }
                    if case .done = verdict(run) { throw Finished(run: run) }
                    try stopIfStuck(run)
                }
            }
        } catch let finished as Finished {
            return finished.run
        } catch let f as APIClient.Failure where f.unreachable {
            Terminal.standardError.write(style.red("The server went away while following \(name): ") + f.text
                                         + "\n`setpoint ps` shows the run once the server is back.\n")
            throw ExitCode(1)
        }
        throw ExitCode(1)   // not reached: the watch ends only by throwing
    }

    /// `Stalled` (the spec cannot work as it is) and `Failed` end the wait, with the reason.
    func stopIfStuck(_ run: API.Run) throws {
        guard let (title, detail) = Self.stuck(run) else { return }
        Terminal.standardError.write(style.red(title) + detail + "\n")
        throw ExitCode(1)
    }

    /// Why following `run` cannot end well, or nil while it still may.
    static func stuck(_ run: API.Run) -> (title: String, detail: String)? {
        if let stalled = run.status.conditions["Stalled"], stalled.status == "True", run.status.observedGeneration >= run.generation {
            return ("Run \(run.name) is stalled (\(stalled.reason)): ", stalled.message + "\nFix the configuration and apply it again.")
        }
        if run.status.phase == .failed {
            let reason = run.status.terminationReason?.rawValue ?? ""
            return ("Run \(run.name) failed: \(reason)", run.status.message.isEmpty ? "" : " — \(run.status.message)")
        }
        return nil
    }
}
