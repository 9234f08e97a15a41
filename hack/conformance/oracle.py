"""dstack's verdict and normalized form for configuration files, as the reference for Setpoint.

For each file: `yaml.safe_load_all`, then dstack's own parser (`parse_run_configuration` for
services, `parse_apply_configuration` for gateways), then the server-side checks that need no
server state and the resource defaults (`set_run_spec_resources_defaults`), calling dstack's own
functions. Prints one JSON line per document: {"file", "ok", "configuration"} or {"file", "ok",
"error"}. Run with a Python that has dstack installed (hack/conformance/run.sh makes one).
"""
import json
import sys
import types
from pathlib import Path

import yaml
from dstack._internal.core.models.configurations import ServiceConfiguration, parse_run_configuration, parse_apply_configuration
from dstack._internal.core.models.gateways import GatewayConfiguration
from dstack._internal.core.services import validate_dstack_resource_name
from dstack._internal.server.services.runs import spec as run_spec_checks
from dstack._internal.server.services.docker import is_valid_docker_volume_target
from dstack._internal.server.services.gateways import __init__ as _gw  # noqa: F401
import dstack._internal.server.services.gateways as gateways
from dstack._internal.utils.path import is_absolute_posix_path


def check_service(conf: ServiceConfiguration) -> None:
    spec = types.SimpleNamespace(configuration=conf, merged_profile=conf, run_name=conf.name)
    if conf.name is not None:
        validate_dstack_resource_name(conf.name)
    if conf.working_dir is not None and not is_absolute_posix_path(conf.working_dir):
        raise ValueError("working_dir must be absolute")
    run_spec_checks._validate_retry_duration(spec)
    run_spec_checks._validate_groups_ip_refs(spec)
    for mount_point in conf.volumes:
        if not is_valid_docker_volume_target(mount_point.path):
            raise ValueError(f"Invalid volume mount path: {mount_point.path}")
    if conf.utilization_policy is not None and conf.utilization_policy.time_window > 3600:
        raise ValueError("Maximum utilization_policy.time_window is 3600s")
    if conf.schedule and all(g.replicas.min == 0 for g in conf.replica_groups):
        raise ValueError("Scheduled services with autoscaling to zero are not supported")
    if len(conf.probes or []) > 10:
        raise ValueError("Cannot configure more than 10 probes")
    if any(p.timeout is not None and p.timeout > 300 for p in (conf.probes or [])):
        raise ValueError("Probe timeout cannot be longer than 300s")
    run_spec_checks.set_run_spec_resources_defaults(spec)
    run_spec_checks._validate_gpu_vendor_and_image(spec)
    run_spec_checks._validate_cpu_arch_and_image(spec)


def check_gateway(conf: GatewayConfiguration) -> None:
    gateways.check_backend_type_available = lambda backend: None
    gateways.BACKENDS_WITH_GATEWAY_SUPPORT = [b for b in type(conf.backend) if b.value in ("aws", "azure", "gcp", "kubernetes")]
    gateways.BACKENDS_WITH_PRIVATE_GATEWAY_SUPPORT = [b for b in type(conf.backend) if b.value in ("aws", "gcp")]
    gateways._validate_gateway_configuration(conf)


def judge(data):
    if not isinstance(data, dict) or data.get("type") not in ("service", "gateway"):
        raise ValueError("not a service or gateway")
    if data["type"] == "service":
        conf = parse_run_configuration(data)
        check_service(conf)
    else:
        conf = parse_apply_configuration(data)
        check_gateway(conf)
    return conf.model_dump(mode="json")


def main(paths):
    for path in paths:
        text = Path(path).read_text()
        try:
            documents = list(yaml.safe_load_all(text)) or [None]
        except Exception as e:  # dstack itself crashes here; any error is a rejection
            print(json.dumps({"file": path, "ok": False, "error": f"yaml: {type(e).__name__}"}))
            continue
        for doc in documents:
            try:
                conf = judge(doc)
                print(json.dumps({"file": path, "ok": True, "configuration": conf}))
            except Exception as e:
                print(json.dumps({"file": path, "ok": False, "error": f"{type(e).__name__}: {str(e)[:300]}"}))


if __name__ == "__main__":
    main(sys.argv[1:])
