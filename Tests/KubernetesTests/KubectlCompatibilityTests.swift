import Foundation
import Testing
import TestSupport

/// The fake API server is only worth its tests if the real client accepts it: kubectl (the one
/// on the machine; hack/test.sh installs Debian's kubernetes-client when missing) gets,
/// creates, deletes and watches against it.
@Suite(.timeLimit(.minutes(2))) struct KubectlCompatibilityTests {
    @Test func kubectlGetCreateDeleteWatch() async throws {
        // SETPOINT_KUBECTL picks another kubectl (e.g. Debian's older kubernetes-client).
        let candidates = [ProcessInfo.processInfo.environment["SETPOINT_KUBECTL"]].compactMap { $0 } + ["/usr/bin/kubectl", "/usr/local/bin/kubectl"]
        let kubectl = candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
        let path = try #require(kubectl, "kubectl is not installed (hack/test.sh installs kubernetes-client)")
        let fake = FakeKubernetes()
        try await fake.start()
        defer { fake.stop() }
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/kubeconfig"
        try fake.kubeconfig(namespace: "default").write(toFile: config, atomically: true, encoding: .utf8)
        let k = [path, "--kubeconfig", config, "--request-timeout=20s"]
        let env = ["HOME": dir]

        var (status, out) = try await runProcess(k + ["get", "pods"], environment: env)
        #expect(status == 0, "kubectl get pods: \(out)")
        #expect(out.contains("No resources found"), "\(out)")

        let pod = #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"hello","labels":{"app":"hello"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#
        try pod.write(toFile: dir + "/pod.json", atomically: true, encoding: .utf8)
        (status, out) = try await runProcess(k + ["create", "-f", dir + "/pod.json"], environment: env)
        #expect(status == 0, "kubectl create: \(out)")
        #expect(out.contains("pod/hello created"), "\(out)")

        (status, out) = try await runProcess(k + ["get", "pod", "hello", "-o", "jsonpath={.metadata.name} {.status.phase} {.metadata.resourceVersion}"], environment: env)
        #expect(status == 0, "kubectl get pod: \(out)")
        #expect(out.hasPrefix("hello Running "), "\(out)")

        (status, out) = try await runProcess(k + ["get", "pods", "-l", "app=hello", "-o", "name"], environment: env)
        #expect(out.trimmingCharacters(in: .whitespacesAndNewlines) == "pod/hello", "label selector: \(out)")
        (status, out) = try await runProcess(k + ["get", "pods", "-l", "app!=hello", "-o", "name"], environment: env)
        #expect(!out.contains("pod/hello"), "negative label selector: \(out)")

        // A second create of the same name is refused with the API's message.
        (status, out) = try await runProcess(k + ["create", "-f", dir + "/pod.json"], environment: env)
        #expect(status != 0)
        #expect(out.contains("AlreadyExists") || out.contains("already exists"), "\(out)")

        // Watch: kubectl lists, then watches from the list's version and prints what changes.
        let watcher = Process()
        watcher.executableURL = URL(fileURLWithPath: path)
        watcher.arguments = Array(k.dropFirst()) + ["get", "pods", "--watch", "-o", "name"]
        watcher.environment = ProcessInfo.processInfo.environment.merging(env) { _, b in b }
        let pipe = Pipe()
        watcher.standardOutput = pipe
        watcher.standardError = pipe
        try watcher.run()
        defer { if watcher.isRunning { kill(watcher.processIdentifier, SIGKILL) }; watcher.waitUntilExit() }
        try await eventually("kubectl to open its watch") { fake.openWatches > 0 }
        let second = pod.replacingOccurrences(of: "\"hello\"", with: "\"second\"")
        try second.write(toFile: dir + "/second.json", atomically: true, encoding: .utf8)
        (status, out) = try await runProcess(k + ["create", "-f", dir + "/second.json"], environment: env)
        #expect(status == 0, "\(out)")

        (status, out) = try await runProcess(k + ["delete", "pod", "hello", "--wait=true"], environment: env)
        #expect(status == 0, "kubectl delete: \(out)")
        #expect(out.contains("pod \"hello\" deleted"), "\(out)")
        (status, out) = try await runProcess(k + ["get", "pod", "hello"], environment: env)
        #expect(status != 0 && out.contains("NotFound"), "deleted pod: \(out)")

        kill(watcher.processIdentifier, SIGTERM)
        watcher.waitUntilExit()
        let watched = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(watched.contains("pod/second"), "kubectl --watch output: \(watched)")
        #expect(fake.requests["watch", default: 0] >= 1)
    }
}
