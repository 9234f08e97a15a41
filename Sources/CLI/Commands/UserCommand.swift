import APIClient
import ArgumentParser
import Foundation
import Model

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "user", abstract: "Manage users (global admins only).",
                                                    subcommands: [Create.self, List.self, Delete.self])

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a user: their token stops working at once (on gateways within a second).")
        @OptionGroup var server: ServerOptions
        @Argument(help: "User name.") var name: String
        @Flag(name: .shortAndLong, help: "Do not ask for confirmation.") var yes = false

        func run() async throws {
            guard try confirm("Delete the user \(name)?", yes: yes) else { return }
            _ = try await server.client().deleteUser(name)
            print("Deleted user \(name).")
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user and print its token (shown once).")
        @OptionGroup var server: ServerOptions
        @Argument(help: "User name.") var name: String
        @Option(name: .customLong("role"), help: "PROJECT=ROLE, ROLE one of admin, manager, user (repeatable).") var roles: [String] = []
        @Flag(help: "Make the user a global admin.") var admin = false

        func run() async throws {
            var projects: [String: String] = [:]
            for r in roles {
                let parts = r.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw UsageError(message: "--role \(r): expected PROJECT=ROLE") }
                projects[parts[0]] = parts[1]
            }
            let user = try await server.client().createUser(API.UserRequest(name: name, globalRole: admin ? "admin" : "user", projects: projects))
            print("Created user \(user.name). Its token (shown once): \(user.token ?? "")")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users and their roles.")
        @OptionGroup var server: ServerOptions

        func run() async throws {
            let users = try await server.client().users()
            Terminal.standardOutput.write(Render.table(["NAME", "GLOBAL ROLE", "PROJECTS"], users.map { u in
                [u.name, u.globalRole, u.projects.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")]
            }, style: TextStyle(enabled: Terminal.standardOutput.isTerminal)))
        }
    }
}

struct ProjectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "project", abstract: "Manage projects.",
                                                    subcommands: [Create.self, List.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a project (global admins only); give users roles in it with `setpoint user create --role`.")
        @OptionGroup var server: ServerOptions
        @Argument(help: "Project name.") var name: String
        @Option(help: "What the project is for.") var description: String?

        func run() async throws {
            let project = try await server.client().createProject(API.ProjectRequest(name: name, description: description))
            print("Created project \(project.name).")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the projects you have a role in.")
        @OptionGroup var server: ServerOptions

        func run() async throws {
            let projects = try await server.client().projects()
            Terminal.standardOutput.write(Render.table(["NAME", "DESCRIPTION"], projects.map { [$0.name, $0.description.isEmpty ? "-" : $0.description] },
                                                       style: TextStyle(enabled: Terminal.standardOutput.isTerminal)))
        }
    }
}
