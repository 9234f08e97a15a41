import CLI
import Foundation

let status = await SetpointCommand.run(arguments: Array(CommandLine.arguments.dropFirst()))
exit(status)
