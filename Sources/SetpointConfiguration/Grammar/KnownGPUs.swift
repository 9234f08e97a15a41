/// GPU and accelerator model names by vendor, for vendor inference (`gpu: A100` means NVIDIA).
/// The same catalog dstack consults (gpuhunt 0.1.34, `KNOWN_*` lists), lower-cased.
enum KnownGPUs {
    static let nvidia: Set<String> = ["a10", "a100", "a10g", "a16", "a40", "a4000", "a4500", "a5000", "a6000", "b200", "b300", "gb200", "gb300", "gh200", "h100", "h100nvl", "h200", "h200nvl", "l4", "l40", "l40s", "p100", "rtx2000ada", "rtx2060", "rtx2060super", "rtx2070", "rtx2070super", "rtx2080", "rtx2080super", "rtx2080ti", "rtx3050", "rtx3060", "rtx3060ti", "rtx3070", "rtx3070ti", "rtx3080", "rtx3080ti", "rtx3090", "rtx3090ti", "rtx4000ada", "rtx4060", "rtx4060ti", "rtx4070", "rtx4070super", "rtx4070ti", "rtx4070tisuper", "rtx4080", "rtx4080super", "rtx4090", "rtx5060", "rtx5060ti", "rtx5070", "rtx5070ti", "rtx5080", "rtx5090", "rtx6000", "rtx6000ada", "rtxpro4500", "rtxpro6000", "t4", "v100"]
    static let amd: Set<String> = ["mi100", "mi210", "mi250", "mi250x", "mi300a", "mi300x", "mi308x", "mi325x", "mi350x", "mi355x"]
    static let intel: Set<String> = ["gaudi", "gaudi2", "gaudi3"]
    static let tenstorrent: Set<String> = ["n150", "n300", "p100a", "p150", "p300", "tt-galaxy-bh", "tt-galaxy-wh"]
    static let tpuVersions: Set<String> = ["v2", "v3", "v4", "v5litepod", "v5p", "v6e"]
}
