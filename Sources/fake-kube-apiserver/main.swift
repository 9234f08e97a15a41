import Foundation
import TestSupport

// The fake Kubernetes API server as a process, for benchmarks and trying Setpoint's kubernetes
// backend without a cluster (hack/bench/kubernetes.sh):
//   fake-kube-apiserver --kubeconfig PATH [--nodes N] [--namespace NS]
// It writes a kubeconfig for itself, prints its URL and serves until killed. Request counts by
// verb: GET /debug/requests; POST /debug/reset sets them to zero.
var kubeconfigPath: String?
var nodes = 1
var namespace = "default"
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--kubeconfig": kubeconfigPath = arguments.next()
    case "--nodes": nodes = arguments.next().flatMap(Int.init) ?? 1
    case "--namespace": namespace = arguments.next() ?? "default"
    default:
        FileHandle.standardError.write(Data("fake-kube-apiserver: unknown argument \(argument)\n".utf8))
        exit(2)
    }
}
let fake = FakeKubernetes()
try await fake.start()
for i in 0..<nodes { fake.addNode("node-\(i + 1)", cpu: "16", memory: "64Gi", disk: "500Gi") }
if let kubeconfigPath {
    try fake.kubeconfig(namespace: namespace).write(toFile: kubeconfigPath, atomically: true, encoding: .utf8)
}
FileHandle.standardOutput.write(Data("fake-kube-apiserver listening on \(fake.url)\n".utf8))
while true { try await Task.sleep(for: .seconds(3600)) }
