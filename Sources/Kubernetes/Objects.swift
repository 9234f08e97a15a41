import Foundation

// A small, hand-written subset of the Kubernetes core/v1 (and coordination/v1) API: only the
// fields Setpoint reads or writes. Unknown fields are ignored when decoding; objects are never
// read-modify-written whole (changes go out as patches), so nothing a newer server adds is lost.

public struct ObjectMeta: Codable, Sendable, Equatable {
    public var name: String?
    public var generateName: String?
    public var namespace: String?
    public var uid: String?
    public var resourceVersion: String?
    public var generation: Int64?
    public var creationTimestamp: String?
    public var deletionTimestamp: String?
    public var deletionGracePeriodSeconds: Int64?
    public var labels: [String: String]?
    public var annotations: [String: String]?
    public var finalizers: [String]?

    public init(name: String? = nil, namespace: String? = nil, labels: [String: String]? = nil, annotations: [String: String]? = nil) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
    }
}

public struct ListMeta: Codable, Sendable, Equatable {
    public var resourceVersion: String?
    public var `continue`: String?
}

/// Objects with metadata, so that lists, watches and caches can be generic.
public protocol KubeObject: Codable, Sendable {
    static var apiVersion: String { get }
    static var kind: String { get }
    /// The plural resource name in URLs (`pods`).
    static var resource: String { get }
    static var namespaced: Bool { get }
    var metadata: ObjectMeta { get set }
}

public struct ObjectList<T: KubeObject>: Codable, Sendable {
    public var apiVersion: String?
    public var kind: String?
    public var metadata: ListMeta
    public var items: [T]
}

// MARK: Pod

public struct Pod: KubeObject, Equatable {
    public static let apiVersion = "v1"
    public static let kind = "Pod"
    public static let resource = "pods"
    public static let namespaced = true
    public var apiVersion: String? = Pod.apiVersion
    public var kind: String? = Pod.kind
    public var metadata: ObjectMeta
    public var spec: PodSpec?
    public var status: PodStatus?

    public init(metadata: ObjectMeta, spec: PodSpec) {
        self.metadata = metadata
        self.spec = spec
    }
}

public struct PodSpec: Codable, Sendable, Equatable {
    public var containers: [Container]
    public var initContainers: [Container]?
    public var volumes: [Volume]?
    public var restartPolicy: String?
    public var terminationGracePeriodSeconds: Int64?
    public var imagePullSecrets: [LocalObjectReference]?
    public var affinity: Affinity?
    public var tolerations: [Toleration]?
    public var nodeName: String?
    public var serviceAccountName: String?
    public var automountServiceAccountToken: Bool?
    public var enableServiceLinks: Bool?

    public init(containers: [Container]) { self.containers = containers }
}

public struct Container: Codable, Sendable, Equatable {
    public var name: String
    public var image: String?
    public var command: [String]?
    public var args: [String]?
    public var workingDir: String?
    public var env: [EnvVar]?
    public var ports: [ContainerPort]?
    public var resources: ResourceRequirements?
    public var volumeMounts: [VolumeMount]?
    public var readinessProbe: Probe?
    public var securityContext: SecurityContext?
    public var imagePullPolicy: String?
}

public struct EnvVar: Codable, Sendable, Equatable {
    public struct Source: Codable, Sendable, Equatable {
        public struct SecretKey: Codable, Sendable, Equatable {
            public var name: String
            public var key: String
        }
        public var secretKeyRef: SecretKey?
    }

    public var name: String
    public var value: String?
    public var valueFrom: Source?
    public init(name: String, value: String) { self.name = name; self.value = value }
    /// The value of key `key` of Secret `secret` (what must not be in the Pod's spec).
    public init(name: String, secret: String, key: String) {
        self.name = name
        self.valueFrom = Source(secretKeyRef: .init(name: secret, key: key))
    }
}

public struct ContainerPort: Codable, Sendable, Equatable {
    public var name: String?
    public var containerPort: Int
    public var `protocol`: String?

    public init(name: String? = nil, containerPort: Int, protocol: String? = nil) {
        self.name = name
        self.containerPort = containerPort
        self.protocol = `protocol`
    }
}

public struct ResourceRequirements: Codable, Sendable, Equatable {
    public var requests: [String: String]?
    public var limits: [String: String]?

    public init(requests: [String: String]? = nil, limits: [String: String]? = nil) {
        self.requests = requests
        self.limits = limits
    }
}

public struct VolumeMount: Codable, Sendable, Equatable {
    public var name: String
    public var mountPath: String
    public var readOnly: Bool?

    public init(name: String, mountPath: String, readOnly: Bool? = nil) {
        self.name = name
        self.mountPath = mountPath
        self.readOnly = readOnly
    }
}

public struct Volume: Codable, Sendable, Equatable {
    public var name: String
    public var emptyDir: EmptyDirVolumeSource?
    public var secret: SecretVolumeSource?
}

public struct EmptyDirVolumeSource: Codable, Sendable, Equatable {
    public var medium: String?
    public var sizeLimit: String?

    public init(medium: String? = nil, sizeLimit: String? = nil) {
        self.medium = medium
        self.sizeLimit = sizeLimit
    }
}

public struct SecretVolumeSource: Codable, Sendable, Equatable {
    public var secretName: String
}

public struct LocalObjectReference: Codable, Sendable, Equatable {
    public var name: String
}

public struct SecurityContext: Codable, Sendable, Equatable {
    public var privileged: Bool?
    public var runAsUser: Int64?

    public init(privileged: Bool? = nil, runAsUser: Int64? = nil) {
        self.privileged = privileged
        self.runAsUser = runAsUser
    }
}

public struct Probe: Codable, Sendable, Equatable {
    public struct HTTPGetAction: Codable, Sendable, Equatable {
        public var path: String
        public var port: Int
        public var httpHeaders: [HTTPHeader]?

        public init(path: String, port: Int, httpHeaders: [HTTPHeader]? = nil) {
            self.path = path
            self.port = port
            self.httpHeaders = httpHeaders
        }

        enum CodingKeys: String, CodingKey { case path, port, httpHeaders }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            path = try c.decodeIfPresent(String.self, forKey: .path) ?? "/"
            port = try Probe.port(c, .port)
            httpHeaders = try c.decodeIfPresent([HTTPHeader].self, forKey: .httpHeaders)
        }
    }

    /// Ports are IntOrString in the API: a named port decodes as 0 (Setpoint never writes one).
    static func port<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> Int {
        if let n = try? c.decode(Int.self, forKey: key) { return n }
        return Int(try c.decode(String.self, forKey: key)) ?? 0
    }

    public struct HTTPHeader: Codable, Sendable, Equatable {
        public var name: String
        public var value: String
    }

    public struct TCPSocketAction: Codable, Sendable, Equatable {
        public var port: Int

        public init(port: Int) { self.port = port }

        enum CodingKeys: String, CodingKey { case port }

        public init(from decoder: any Decoder) throws {
            port = try Probe.port(try decoder.container(keyedBy: CodingKeys.self), .port)
        }
    }

    public var httpGet: HTTPGetAction?
    public var tcpSocket: TCPSocketAction?
    public var timeoutSeconds: Int?
    public var periodSeconds: Int?
    public var successThreshold: Int?
    public var failureThreshold: Int?
}

public struct Affinity: Codable, Sendable, Equatable {
    public var nodeAffinity: NodeAffinity?
}

public struct NodeAffinity: Codable, Sendable, Equatable {
    public var requiredDuringSchedulingIgnoredDuringExecution: NodeSelector?
}

public struct NodeSelector: Codable, Sendable, Equatable {
    public var nodeSelectorTerms: [NodeSelectorTerm]
}

public struct NodeSelectorTerm: Codable, Sendable, Equatable {
    public var matchExpressions: [NodeSelectorRequirement]
}

public struct NodeSelectorRequirement: Codable, Sendable, Equatable {
    public var key: String
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`.
    public var `operator`: String
    public var values: [String]?

    public init(key: String, operator: String, values: [String]? = nil) {
        self.key = key
        self.operator = `operator`
        self.values = values
    }
}

public struct Toleration: Codable, Sendable, Equatable {
    public var key: String?
    public var `operator`: String?
    public var value: String?
    public var effect: String?

    public init(key: String? = nil, operator: String? = nil, value: String? = nil, effect: String? = nil) {
        self.key = key
        self.operator = `operator`
        self.value = value
        self.effect = effect
    }
}

public struct PodStatus: Codable, Sendable, Equatable {
    public var phase: String?
    public var reason: String?
    public var message: String?
    public var podIP: String?
    public var hostIP: String?
    public var startTime: String?
    public var conditions: [PodCondition]?
    public var containerStatuses: [ContainerStatus]?
    public var initContainerStatuses: [ContainerStatus]?
    public init(phase: String? = nil) { self.phase = phase }
}

public struct PodCondition: Codable, Sendable, Equatable {
    public var type: String
    public var status: String
    public var reason: String?
    public var message: String?
    public init(type: String, status: String, reason: String? = nil, message: String? = nil) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
    }
}

public struct ContainerStatus: Codable, Sendable, Equatable {
    public var name: String
    public var ready: Bool?
    public var restartCount: Int?
    public var image: String?
    public var state: ContainerState?
    public var lastState: ContainerState?
    public init(name: String, ready: Bool? = nil, restartCount: Int? = nil, state: ContainerState? = nil, lastState: ContainerState? = nil) {
        self.name = name
        self.ready = ready
        self.restartCount = restartCount
        self.state = state
        self.lastState = lastState
    }
}

public struct ContainerState: Codable, Sendable, Equatable {
    public struct Waiting: Codable, Sendable, Equatable {
        public var reason: String?
        public var message: String?
        public init(reason: String?, message: String? = nil) { self.reason = reason; self.message = message }
    }

    public struct Running: Codable, Sendable, Equatable {
        public var startedAt: String?
        public init(startedAt: String? = nil) { self.startedAt = startedAt }
    }

    public struct Terminated: Codable, Sendable, Equatable {
        public var exitCode: Int32
        public var signal: Int32?
        public var reason: String?
        public var message: String?
        public init(exitCode: Int32, reason: String? = nil, message: String? = nil) {
            self.exitCode = exitCode
            self.reason = reason
            self.message = message
        }
    }

    public var waiting: Waiting?
    public var running: Running?
    public var terminated: Terminated?
    public init(waiting: Waiting? = nil, running: Running? = nil, terminated: Terminated? = nil) {
        self.waiting = waiting
        self.running = running
        self.terminated = terminated
    }
}

// MARK: Secret, Namespace, Service, Node, Event, Lease

public struct Secret: KubeObject, Equatable {
    public static let apiVersion = "v1"
    public static let kind = "Secret"
    public static let resource = "secrets"
    public static let namespaced = true
    public var apiVersion: String? = Secret.apiVersion
    public var kind: String? = Secret.kind
    public var metadata: ObjectMeta
    public var type: String?
    /// Base64-encoded values.
    public var data: [String: String]?

    public init(metadata: ObjectMeta, type: String?, data: [String: String]) {
        self.metadata = metadata
        self.type = type
        self.data = data
    }
}

public struct Namespace: KubeObject, Equatable {
    public static let apiVersion = "v1"
    public static let kind = "Namespace"
    public static let resource = "namespaces"
    public static let namespaced = false
    public var apiVersion: String? = Namespace.apiVersion
    public var kind: String? = Namespace.kind
    public var metadata: ObjectMeta
    public init(metadata: ObjectMeta) { self.metadata = metadata }
}

public struct Service: KubeObject, Equatable {
    public struct Spec: Codable, Sendable, Equatable {
        public struct Port: Codable, Sendable, Equatable {
            public var name: String?
            public var port: Int
            public var targetPort: Int?
        }

        public var selector: [String: String]?
        public var ports: [Port]?
        public var type: String?
        public var clusterIP: String?
    }

    public struct Status: Codable, Sendable, Equatable {
        public struct LoadBalancer: Codable, Sendable, Equatable {
            public struct Ingress: Codable, Sendable, Equatable {
                public var ip: String?
                public var hostname: String?
            }
            public var ingress: [Ingress]?
        }
        public var loadBalancer: LoadBalancer?
    }

    public static let apiVersion = "v1"
    public static let kind = "Service"
    public static let resource = "services"
    public static let namespaced = true
    public var apiVersion: String? = Service.apiVersion
    public var kind: String? = Service.kind
    public var metadata: ObjectMeta
    public var spec: Spec?
    public var status: Status?
}

public struct Node: KubeObject, Equatable {
    public struct Spec: Codable, Sendable, Equatable {
        public var taints: [Taint]?
        public var unschedulable: Bool?
    }

    public struct Taint: Codable, Sendable, Equatable {
        public var key: String
        public var value: String?
        public var effect: String
    }

    public struct Status: Codable, Sendable, Equatable {
        public struct NodeInfo: Codable, Sendable, Equatable {
            public var architecture: String?
        }

        public var allocatable: [String: String]?
        public var capacity: [String: String]?
        public var nodeInfo: NodeInfo?
        public var conditions: [PodCondition]?
    }

    public static let apiVersion = "v1"
    public static let kind = "Node"
    public static let resource = "nodes"
    public static let namespaced = false
    public var apiVersion: String? = Node.apiVersion
    public var kind: String? = Node.kind
    public var metadata: ObjectMeta
    public var spec: Spec?
    public var status: Status?
}

public struct Event: KubeObject, Equatable {
    public struct InvolvedObject: Codable, Sendable, Equatable {
        public var kind: String?
        public var name: String?
        public var namespace: String?
        public var uid: String?
    }

    public static let apiVersion = "v1"
    public static let kind = "Event"
    public static let resource = "events"
    public static let namespaced = true
    public var apiVersion: String? = Event.apiVersion
    public var kind: String? = Event.kind
    public var metadata: ObjectMeta
    public var involvedObject: InvolvedObject
    public var reason: String?
    public var message: String?
    /// `Normal` or `Warning`.
    public var type: String?
    public var count: Int?
    public var lastTimestamp: String?
    /// Set instead of `lastTimestamp` by newer components (events.k8s.io, MicroTime).
    public var eventTime: String?
}

public struct Lease: KubeObject, Equatable {
    public struct Spec: Codable, Sendable, Equatable {
        public var holderIdentity: String?
        public var leaseDurationSeconds: Int?
        public var renewTime: String?
        public var acquireTime: String?
        public var leaseTransitions: Int?

        public init(holderIdentity: String?, leaseDurationSeconds: Int?, renewTime: String?) {
            self.holderIdentity = holderIdentity
            self.leaseDurationSeconds = leaseDurationSeconds
            self.renewTime = renewTime
        }
    }

    public static let apiVersion = "coordination.k8s.io/v1"
    public static let kind = "Lease"
    public static let resource = "leases"
    public static let namespaced = true
    public var apiVersion: String? = Lease.apiVersion
    public var kind: String? = Lease.kind
    public var metadata: ObjectMeta
    public var spec: Spec?

    public init(metadata: ObjectMeta, spec: Spec? = nil) {
        self.metadata = metadata
        self.spec = spec
    }
}

/// The API's error body (`kind: Status`).
public struct Status: Codable, Sendable, Equatable {
    public struct Details: Codable, Sendable, Equatable {
        public struct Cause: Codable, Sendable, Equatable {
            public var reason: String?
            public var message: String?
            public var field: String?
        }

        public var name: String?
        public var kind: String?
        public var causes: [Cause]?
        public var retryAfterSeconds: Int?
    }

    public var kind: String? = "Status"
    public var apiVersion: String? = "v1"
    public var status: String?
    public var message: String?
    public var reason: String?
    public var code: Int?
    public var details: Details?
}

/// One line of a watch stream.
public struct WatchEvent<T: KubeObject>: Sendable {
    public enum Kind: String, Sendable { case added = "ADDED", modified = "MODIFIED", deleted = "DELETED", bookmark = "BOOKMARK", error = "ERROR" }
    public var type: Kind
    public var object: T?
    /// Set for `ERROR` events.
    public var status: Status?
    /// Set for `BOOKMARK` events.
    public var resourceVersion: String?
}
