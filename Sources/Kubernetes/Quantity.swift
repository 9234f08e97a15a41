import Foundation

/// Kubernetes resource quantities (`500m`, `16Gi`, `1e9`, `4`), as plain numbers.
public enum Quantity {
    private static let suffixes: [(String, Double)] = [
        ("Ki", 1024), ("Mi", 1_048_576), ("Gi", 1_073_741_824), ("Ti", 1_099_511_627_776), ("Pi", 1_125_899_906_842_624),
        ("Ei", 1_152_921_504_606_846_976),
        ("n", 1e-9), ("u", 1e-6), ("m", 1e-3), ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("P", 1e15), ("E", 1e18),
    ]

    /// The value (cores for cpu, bytes for memory), or nil when it is not a quantity.
    public static func parse(_ text: String) -> Double? {
        let t = text.trimmingCharacters(in: .whitespaces)
        for (suffix, factor) in suffixes where t.hasSuffix(suffix) {
            return Double(t.dropLast(suffix.count)).map { $0 * factor }
        }
        return Double(t)
    }

    /// Gigabytes as dstack sends them to Kubernetes: whole mebibytes.
    public static func mebibytes(gigabytes: Double) -> String { "\(Int((gigabytes * 1024).rounded(.up)))Mi" }

    /// CPU cores: whole numbers as they are, fractions in millicores.
    public static func cpu(_ cores: Double) -> String {
        cores == cores.rounded() ? String(Int(cores)) : "\(Int((cores * 1000).rounded()))m"
    }
}
