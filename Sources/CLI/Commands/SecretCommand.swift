import APIClient
import ArgumentParser
import Foundation
import Model

/// `setpoint secret set|list|delete`: dstack's `dstack secret`, for `${{ secrets.NAME }}` in
/// `env` and `registry_auth`. Values are sent once and never shown again.
struct SecretCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret", abstract: "Manage the project's secrets (`${{ secrets.NAME }}` in env and registry_auth).",
        subcommands: [Set.self, List.self, Delete.self])

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or change a secret. Services that use it roll to the new value.",
            discussion: "Without VALUE the value is read from standard input (a terminal asks for it without echo; a final newline is dropped), which keeps it out of your shell's history.")
        @OptionGroup var server: ServerOptions
        @Argument(help: "Secret name: letters, digits and _, not starting with a digit.") var name: String
        @Argument(help: "The value (prefer standard input: arguments are visible to other users of this machine).") var value: String?
        @Option(name: .customLong("from-file"), help: "Read the value from this file (as is).") var file: String?

        func validate() throws {
            if value != nil, file != nil { throw ValidationError("give the value as an argument or with --from-file, not both") }
        }

        func run() async throws {
            let secret: String
            if let value {
                secret = value
            } else if let file {
                guard let data = FileManager.default.contents(atPath: file) else { throw UsageError(message: "--from-file \(file): cannot read the file") }
                secret = String(decoding: data, as: UTF8.self)
            } else {
                secret = try Self.readValue(prompt: "Value of \(name): ")
            }
            let info = try await server.client().setSecret(name, value: secret)
            let users = info.usedBy.isEmpty ? "" : "; runs that use it roll to the new value: \(info.usedBy.joined(separator: ", "))"
            print("Set secret \(info.name)\(users).")
        }

        /// A value from standard input: without echo on a terminal, to the end otherwise.
        static func readValue(prompt: String) throws -> String {
            if isatty(STDIN_FILENO) == 1 {
                var saved = termios()
                tcgetattr(STDIN_FILENO, &saved)
                var quiet = saved
                quiet.c_lflag &= ~tcflag_t(ECHO)
                tcsetattr(STDIN_FILENO, TCSANOW, &quiet)
                defer {
                    tcsetattr(STDIN_FILENO, TCSANOW, &saved)
                    Terminal.standardError.write("\n")
                }
                Terminal.standardError.write(prompt)
                guard let line = readLine(strippingNewline: true) else { throw UsageError(message: "no value given") }
                return line
            }
            let data = FileHandle.standardInput.readDataToEndOfFile()
            var text = String(decoding: data, as: UTF8.self)
            if text.hasSuffix("\r\n") { text.removeLast(2) } else if text.hasSuffix("\n") { text.removeLast() }
            return text
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the project's secrets (names only) and the runs that use them.")
        @OptionGroup var server: ServerOptions
        @Option(name: .shortAndLong, help: "Output format: table, json.") var output: String = "table"

        func run() async throws {
            let secrets = try await server.client().secrets()
            if output == "json" {
                print(String(decoding: try API.encoder.encode(secrets), as: UTF8.self))
                return
            }
            let now = Date()
            Terminal.standardOutput.write(Render.table(["NAME", "UPDATED", "BY", "USED BY"], secrets.map { s in
                [s.name, Render.age(s.updatedAt, now: now) + " ago", s.updatedBy ?? "-", s.usedBy.isEmpty ? "-" : s.usedBy.joined(separator: ",")]
            }, style: TextStyle(enabled: Terminal.standardOutput.isTerminal)))
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a secret. Runs that use it keep their replicas; new ones cannot start until it is set again.")
        @OptionGroup var server: ServerOptions
        @Argument(help: "Secret name.") var name: String
        @Flag(name: .shortAndLong, help: "Do not ask for confirmation.") var yes = false

        func run() async throws {
            guard try confirm("Delete the secret \(name)?", yes: yes) else { return }
            let info = try await server.client().deleteSecret(name)
            print("Deleted secret \(info.name)." + (info.usedBy.isEmpty ? "" : " Still used by: \(info.usedBy.joined(separator: ", ")) (their new replicas cannot start without it)."))
        }
    }
}
