"""The stand-in's container create bodies, field for field as gitlab-runner v18.11.4's
Go Docker client (docker v28.5.2) sends them (api/types/container/config.go,
hostconfig.go, api/types/network/endpoint.go; executors/docker/docker.go
``createHostConfig``, ``createHostConfigForService``; recorded by the fake Docker API).

The zero structs below are written from the Go declarations, in their order, without
the ``omitempty`` fields (which appear only when set)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.standin_fakedocker import Call, FakeDocker, serving
from tests.unit.test_standin_executor import BASE, HELPER, creates, payload, run_job, runner_config

ZERO_CONFIG: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
    "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
    "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
    "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}  # fmt: skip
ZERO_HOST_CONFIG: dict[str, Any] = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": None},
    "NetworkMode": "", "PortBindings": None,
    "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}, "AutoRemove": False,
    "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0], "CapAdd": None,
    "CapDrop": None, "CgroupnsMode": "", "Dns": None, "DnsOptions": None,
    "DnsSearch": None, "ExtraHosts": None, "GroupAdd": None, "IpcMode": "", "Cgroup": "",
    "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": False,
    "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "",
    "UsernsMode": "", "ShmSize": 0, "Isolation": "",
    # the embedded container.Resources
    "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
    "BlkioWeightDevice": None, "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None,
    "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "CpuPeriod": 0,
    "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "",
    "CpusetMems": "", "Devices": None, "DeviceCgroupRules": None, "DeviceRequests": None,
    "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None,
    "OomKillDisable": None, "PidsLimit": None, "Ulimits": None, "CpuCount": 0,
    "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
    # after Resources
    "MaskedPaths": None, "ReadonlyPaths": None,
}  # fmt: skip
ZERO_ENDPOINT: dict[str, Any] = {
    "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "DriverOpts": None,
    "GwPriority": 0, "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
    "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
    "DNSNames": None,
}  # fmt: skip
NEVER = {"Name": "no", "MaximumRetryCount": 0}
JSON_FILE = {"Type": "json-file", "Config": None}
NETWORK = "runner-unit-test-3-0-7"
DB, CACHE = "localhost/db:1", "localhost/cache:2"

#: ``[runners.docker]`` with every key the stand-in replays set.
EVERY_KEY: dict[str, Any] = {
    "hostname": "job-host", "runtime": "crun", "memory": "128m", "memory_swap": "256m",
    "memory_reservation": "64m", "cgroup_parent": "jobs.slice", "cpuset_cpus": "0",
    "cpuset_mems": "0", "cpus": "1.5", "cpu_shares": 512, "dns": ["192.0.2.53"],
    "dns_search": ["example.test"], "privileged": True,
    "allowed_privileged_images": ["localhost/pipglr-*:*"], "services_privileged": True,
    "allowed_privileged_services": ["localhost/db:*"], "user": "1000",
    "allowed_users": ["1000"], "group_add": ["audio", "1234"], "userns_mode": "host",
    "cap_add": ["net_admin"], "cap_drop": ["CAP_MKNOD", "chown"], "oom_kill_disable": True,
    "oom_score_adjust": 100, "security_opt": ["no-new-privileges"],
    "services_security_opt": ["label=disable"], "devices": ["/dev/fuse", "/dev/null:/dev/n2:r"],
    "device_cgroup_rules": ["c 10:229 rwm"], "services_devices": {"localhost/db:*": ["/dev/zero"]},
    "volume_driver": "local", "volume_driver_ops": {"o": "size=1g"},
    "extra_hosts": ["host.test:192.0.2.1"], "volumes_from": ["other-container:ro"],
    "ipcmode": "shareable", "mac_address": "92:d0:c6:0a:29:33", "links": ["other:alias"],
    "services": [{"name": DB, "alias": "db", "environment": ["FROM_CONFIG=yes"]}],
    "services_limit": 2, "service_memory": "32m", "service_memory_swap": "64m",
    "service_memory_reservation": "16m", "service_cgroup_parent": "services.slice",
    "service_cpuset_cpus": "1", "service_cpus": "0.5", "service_cpu_shares": 256,
    "allowed_images": ["localhost/**"], "allowed_services": ["localhost/*:*"],
    "allowed_pull_policies": ["if-not-present"], "isolation": "default",
    "shm_size": 67108864, "tmpfs": {"/scratch": "rw,size=64m"},
    "services_tmpfs": {"/var/lib/db": "rw"}, "sysctls": {"net.ipv4.ip_forward": "1"},
    "container_labels": {"team": "ci"}, "ulimit": {"nofile": "1024:2048", "nproc": "512"},
    "log_options": {"env": "A", "labels": "b"},
    "environment": ["FF_NETWORK_PER_BUILD=true"],
}  # fmt: skip
LOG_OPTIONS = {"Type": "json-file", "Config": {"env": "A", "labels": "b"}}


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeDocker]:
    """A fake engine with the job image, the helper and two service images."""
    ids = {BASE: "b", HELPER: "c", DB: "d", CACHE: "e"}
    engine = FakeDocker(images={name: "sha256:" + char * 64 for name, char in ids.items()})
    with serving(tmp_path / "docker.sock", engine):
        yield engine


def service_job() -> dict[str, Any]:
    """A job with one service of its own (the runner adds its configured one)."""
    return payload(
        services=[{"name": CACHE, "alias": "cache"}],
        variables=[
            {"key": "GIT_STRATEGY", "value": "none"},
            {"key": "HEALTHCHECK_TCP_PORT", "value": "5432", "public": True},
        ],
    )


def body(call: Call) -> tuple[dict[str, Any], dict[str, Any]]:
    """A create body split into its Config fields and its HostConfig."""
    config = {k: v for k, v in call.body.items() if k not in ("HostConfig", "NetworkingConfig")}
    return config, call.body["HostConfig"]


def only(fake: FakeDocker, kind: str, image: str | None = None) -> Call:
    """The one create call of containers of ``kind`` (and image id)."""
    found = [c for c in creates(fake, kind) if image is None or c.body["Image"] == image]
    assert len(found) == 1, f"one {kind} container expected, got {len(found)}"
    return found[0]


def test_defaults_are_the_go_zero_values(tmp_path: Path, fake: FakeDocker) -> None:
    """Nothing set: every field Go sends, zero where the executor sets nothing; the
    build container has ``Devices: []`` (bindDevices' empty slice), ``Ulimits: []``
    (GetUlimits' make) and ``OomKillDisable: false`` (a pointer to the field)."""
    run_job(tmp_path, payload(), runner_config(tmp_path / "docker.sock"))
    config, host = body(only(fake, "build"))
    assert list(config) == list(ZERO_CONFIG), "no MacAddress (omitempty, not configured)"
    assert list(host) == list(ZERO_HOST_CONFIG), "Go's field order, no omitempty field"
    expected = ZERO_HOST_CONFIG | {
        "Binds": host["Binds"], "LogConfig": JSON_FILE, "RestartPolicy": NEVER,
        "Devices": [], "OomKillDisable": False, "Ulimits": [],
    }  # fmt: skip
    assert host == expected, {k: v for k, v in host.items() if expected.get(k) != v}
    assert only(fake, "build").body["NetworkingConfig"] == {"EndpointsConfig": None}


def test_every_key_in_the_build_container(tmp_path: Path, fake: FakeDocker) -> None:
    """createHostConfig with every key: sizes in bytes, cpus in NanoCpus, ulimits soft/
    hard, capabilities normalised and sorted (the client's normalizeCapabilities),
    privileged because the image matches allowed_privileged_images."""
    run_job(tmp_path, service_job(), runner_config(tmp_path / "docker.sock", **EVERY_KEY))
    call = only(fake, "build")
    config, host = body(call)
    assert config["User"] == "1000" and config["Hostname"] == "job-host", config
    assert config["MacAddress"] == "92:d0:c6:0a:29:33", "API 1.41: in Config"
    assert config["Labels"]["team"] == "ci", config["Labels"]
    links = [h for h in host["ExtraHosts"] if h.endswith(":10.88.0.9")]
    names = {"localhost__db", "localhost-db", "db", "localhost__cache", "localhost-cache", "cache"}
    assert names <= {h.split(":")[0] for h in links}, f"both services: {host['ExtraHosts']}"
    assert host == ZERO_HOST_CONFIG | {
        "Binds": host["Binds"], "LogConfig": LOG_OPTIONS, "NetworkMode": NETWORK,
        "RestartPolicy": NEVER, "VolumeDriver": "local", "VolumesFrom": ["other-container:ro"],
        "CapAdd": ["CAP_NET_ADMIN"], "CapDrop": ["CAP_CHOWN", "CAP_MKNOD"],
        "Dns": ["192.0.2.53"], "DnsSearch": ["example.test"],
        "ExtraHosts": ["host.test:192.0.2.1", *links], "GroupAdd": ["audio", "1234"],
        "IpcMode": "shareable", "Links": ["other:alias"], "OomScoreAdj": 100,
        "Privileged": True, "SecurityOpt": ["no-new-privileges"],
        "Tmpfs": {"/scratch": "rw,size=64m"}, "UsernsMode": "host", "ShmSize": 67108864,
        "Sysctls": {"net.ipv4.ip_forward": "1"}, "Runtime": "crun", "Isolation": "default",
        "CpuShares": 512, "Memory": 128 << 20, "NanoCpus": 1_500_000_000,
        "CgroupParent": "jobs.slice", "CpusetCpus": "0", "CpusetMems": "0",
        "Devices": [
            {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"},
            {"PathOnHost": "/dev/null", "PathInContainer": "/dev/n2", "CgroupPermissions": "r"},
        ],
        "DeviceCgroupRules": ["c 10:229 rwm"], "MemoryReservation": 64 << 20,
        "MemorySwap": 256 << 20, "OomKillDisable": True,
        "Ulimits": [{"Name": "nofile", "Hard": 2048, "Soft": 1024},
                    {"Name": "nproc", "Hard": 512, "Soft": 512}],
    }  # fmt: skip
    endpoint = call.body["NetworkingConfig"]["EndpointsConfig"][NETWORK]
    assert endpoint == ZERO_ENDPOINT | {"Aliases": ["build", call.query["name"][0]]}


def test_every_key_in_the_predefined_container(tmp_path: Path, fake: FakeDocker) -> None:
    """The helper container gets the same HostConfig but is not privileged (its image id
    is not in allowed_privileged_images), and no User."""
    run_job(tmp_path, service_job(), runner_config(tmp_path / "docker.sock", **EVERY_KEY))
    _, build = body(only(fake, "build"))
    config, host = body(only(fake, "predefined"))
    assert config["User"] == "" and config["Image"] == "sha256:" + "c" * 64, config
    assert host == build | {"Privileged": False}, {
        k: v for k, v in host.items() if build.get(k) != v
    }


def test_every_key_in_the_service_containers(tmp_path: Path, fake: FakeDocker) -> None:
    """createHostConfigForService: the service_* resources, services_tmpfs,
    services_security_opt, services_devices by image; no capabilities, ulimits, sysctls,
    group_add; privileged only for the service in allowed_privileged_services; the
    configured service first (index 0) with its environment."""
    run_job(tmp_path, service_job(), runner_config(tmp_path / "docker.sock", **EVERY_KEY))
    db = only(fake, "service", "sha256:" + "d" * 64)
    cache = only(fake, "service", "sha256:" + "e" * 64)
    assert db.query["name"][0].endswith("-localhost__db-0"), db.query
    assert cache.query["name"][0].endswith("-localhost__cache-1"), cache.query
    config, host = body(db)
    assert list(config) == list(ZERO_CONFIG), list(config)
    assert "FROM_CONFIG=yes" in config["Env"] and config["Cmd"] is None, config
    expected = ZERO_HOST_CONFIG | {
        "Binds": host["Binds"], "LogConfig": LOG_OPTIONS, "NetworkMode": NETWORK,
        "RestartPolicy": NEVER, "Dns": ["192.0.2.53"], "DnsSearch": ["example.test"],
        "ExtraHosts": ["host.test:192.0.2.1"], "Privileged": True,
        "SecurityOpt": ["label=disable"], "Runtime": "crun", "UsernsMode": "host",
        "ShmSize": 67108864, "Tmpfs": {"/var/lib/db": "rw"}, "Memory": 32 << 20,
        "MemorySwap": 64 << 20, "MemoryReservation": 16 << 20,
        "CgroupParent": "services.slice", "CpusetCpus": "1", "CpuShares": 256,
        "NanoCpus": 500_000_000,
        "Devices": [{"PathOnHost": "/dev/zero", "PathInContainer": "/dev/zero",
                     "CgroupPermissions": "rwm"}],
    }  # fmt: skip
    assert host == expected, {k: v for k, v in host.items() if expected.get(k) != v}
    _, other = body(cache)
    assert other == expected | {"Binds": other["Binds"], "Privileged": False, "Devices": None}


def test_health_check_and_permission_containers(tmp_path: Path, fake: FakeDocker) -> None:
    """The wait-for-service and cache-init containers: Config with command, image,
    labels (and env), a HostConfig of zeros but the few fields they set, and no
    NetworkingConfig at all (created with a nil one)."""
    run_job(tmp_path, service_job(), runner_config(tmp_path / "docker.sock", **EVERY_KEY))
    wait = creates(fake, "wait")[0]
    config, host = body(wait)
    assert "NetworkingConfig" not in wait.body, list(wait.body)
    assert config == ZERO_CONFIG | {
        "Cmd": ["gitlab-runner-helper", "health-check"], "Image": "sha256:" + "c" * 64,
        "Labels": config["Labels"], "Env": config["Env"],
    }  # fmt: skip
    assert config["Env"][0].startswith("WAIT_FOR_SERVICE_TCP_ADDR="), config["Env"]
    assert host == ZERO_HOST_CONFIG | {
        "RestartPolicy": NEVER, "ExtraHosts": [f"{config['Env'][0][-12:]}:10.88.0.9"],
        "NetworkMode": NETWORK, "LogConfig": LOG_OPTIONS,
    }  # fmt: skip
    permission = creates(fake, "cache-init")[0]
    config, host = body(permission)
    assert "NetworkingConfig" not in permission.body, list(permission.body)
    assert config == ZERO_CONFIG | {
        "Image": "sha256:" + "c" * 64, "Labels": config["Labels"],
        "Cmd": ["gitlab-runner-helper", "cache-init", "/gitlab-runner-cache-init"],
    }  # fmt: skip
    assert host == ZERO_HOST_CONFIG | {"LogConfig": JSON_FILE, "Binds": host["Binds"]}
    assert host["Binds"][0].endswith(":/gitlab-runner-cache-init"), host["Binds"]


def test_volume_create_body_omits_empty_fields(tmp_path: Path, fake: FakeDocker) -> None:
    """volume.CreateOptions: every field omitempty; volume_driver and
    volume_driver_ops appear only when configured (positive control in the same run)."""
    run_job(tmp_path, payload(), runner_config(tmp_path / "docker.sock"))
    plain = [c.body for c in fake.calls if c.path == "/volumes/create"]
    fake.calls.clear()
    runner = runner_config(tmp_path / "docker.sock", volume_driver="local",
                           volume_driver_ops={"o": "size=1g"})  # fmt: skip
    run_job(tmp_path, payload(), runner)
    driven = [c.body for c in fake.calls if c.path == "/volumes/create"]
    assert plain and all(list(b) == ["Labels", "Name"] for b in plain), plain
    assert driven and all(b["DriverOpts"] == {"o": "size=1g"} for b in driven), driven
    assert all(list(b) == ["Driver", "DriverOpts", "Labels", "Name"] for b in driven), driven


def test_container_labels_expand_only_job_variables(tmp_path: Path, fake: FakeDocker) -> None:
    """prepareContainerLabels expands container_labels with Build.Variables: a job
    variable is expanded, a runner ``environment`` variable is not."""
    runner = runner_config(
        tmp_path / "docker.sock",
        environment=["FROM_RUNNER=r"],
        container_labels={"job": "$CI_PIPELINE_ID", "runner": "x$FROM_RUNNER"},
    )
    run_job(tmp_path, payload(), runner)
    found = only(fake, "build").body["Labels"]
    assert (found["job"], found["runner"]) == ("99", "x"), found
