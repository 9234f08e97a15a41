import APIClient
import ArgumentParser
import Model

/// The `setpoint` command tree.
public struct SetpointCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "setpoint",
        abstract: "Run dstack-style services as secure, scalable endpoints.",
        subcommands: [ServerCommand.self, ApplyCommand.self, DiffCommand.self, PsCommand.self, GetCommand.self, EventsCommand.self, DescribeCommand.self, StopCommand.self,
                      DeleteCommand.self, LogsCommand.self, GatewayCommand.self, OfferCommand.self, UserCommand.self, ProjectCommand.self, SecretCommand.self, SourceCommand.self, StoreCommand.self, ValidateCommand.self]
    )

    public init() {}

    /// Runs the command line and returns the process exit status: the command's own status,
    /// 0 for help and version output, and 2 for usage errors.
    public static func run(arguments: [String]) async -> Int32 {
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch let exit as ExitCode {
            return exit.rawValue
        } catch let usage as UsageError {
            Terminal.standardError.write("error: \(usage.message)\n")
            return 2
        } catch let failure as APIClient.Failure {
            Terminal.standardError.write("error: \(failure.description)\n")
            if let issues = failure.body?.issues {
                for i in issues { Terminal.standardError.write("  \(i.located)\n") }
            }
            return 1
        } catch let settings as SettingsError {
            Terminal.standardError.write("error: \(settings.message)\n")
            return 1
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                return 0
            }
            Terminal.standardError.write(fullMessage(for: error) + "\n")
            return 2
        }
    }
}

/// A mistake in how the command was called (exit status 2).
struct UsageError: Error {
    var message: String
}
