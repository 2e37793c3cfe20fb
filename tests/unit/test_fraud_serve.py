"""`fraud-serve` runs `serve run` with the fast ingress, isolated from any other server."""

import json
import os
import socket
from pathlib import Path

import pytest
import yaml

from fraud_model.ray_env import (
    QUIET_PORTS,
    REPLICA_GRPC_PORTS,
    REPLICA_PORT_BLOCKS,
    SINGLE_PORTS,
    free_port,
    free_range,
)
from serve_app import apply_config, cli, local_service
from serve_app.loading import PROJECT_ROOT


def test_fast_ingress_is_on_and_haproxy_state_is_private() -> None:
    first, second = local_service.ray_environment("/tmp/a"), local_service.ray_environment("/tmp/b")
    assert first["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    assert first["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    assert first["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] == "0"
    assert first["RAY_SERVE_HAPROXY_RETRY_ON"] == "conn-failure empty-response"
    assert first["RAY_SERVE_GRPC_MAX_MESSAGE_SIZE"] == str(4 * 1024 * 1024)
    assert first["RAY_SERVE_HAPROXY_SOCKET_PATH"].startswith("/tmp/a/")
    # Two servers at once (the user's and the tests') never share HAProxy files or ports.
    fixed = {"8404", "9101", "8500", "9500"}  # Ray's defaults
    for name in (
        "RAY_SERVE_HAPROXY_STATS_PORT",
        "RAY_SERVE_HAPROXY_METRICS_PORT",
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT",
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT",
    ):
        assert first[name] not in fixed
    assert first["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"] != second["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]


def test_a_server_s_replicas_take_grpc_ports_from_a_range_of_its_own() -> None:
    """Serve's replicas bind their gRPC ports with SO_REUSEPORT on: two servers drawing from one
    range would each get calls meant for the other."""
    env = local_service.ray_environment("/tmp/a")
    first = int(env["RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT"])
    last = int(env["RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT"])
    assert last - first + 1 == REPLICA_GRPC_PORTS and last <= 65_535
    assert first != 40_000  # where Serve's one range starts


def test_a_block_with_a_port_something_holds_is_passed_over() -> None:
    held_block = free_range()
    free_block = free_range([b for b in REPLICA_PORT_BLOCKS if b != held_block])
    with socket.socket() as held:
        held.bind(("127.0.0.1", held_block + REPLICA_GRPC_PORTS - 1))  # its last port
        held.listen()
        assert {free_range([held_block, free_block]) for _ in range(20)} == {free_block}
        with pytest.raises(RuntimeError, match="free ports"):
            free_range([held_block])


def test_ports_are_chosen_where_nothing_takes_one_by_itself() -> None:
    """Below Serve's range for the replicas' HTTP ports and the kernel's ephemeral range (where a
    process binding port 0, or an outgoing connection, gets its port), above Ray's worker ports;
    single ports never inside a replica block, and blocks never partly overlapping."""
    low, _ = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert QUIET_PORTS.start >= 20_000 and QUIET_PORTS.stop <= min(30_000, low)
    block_ports = [p for b in REPLICA_PORT_BLOCKS for p in range(b, b + REPLICA_GRPC_PORTS)]
    assert len(block_ports) == len(set(block_ports))  # whole blocks, side by side
    assert set(block_ports) <= set(QUIET_PORTS) and not set(block_ports) & set(SINGLE_PORTS)
    ports = {free_port() for _ in range(20)}
    assert ports <= set(SINGLE_PORTS) and len(ports) > 1  # chosen at random
    assert {free_range() for _ in range(20)} <= set(REPLICA_PORT_BLOCKS)
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # free when chosen


def test_the_caller_environment_wins() -> None:
    # What fraud-serve passes to `serve run`: its defaults, under whatever the caller set.
    env = local_service.ray_environment("/tmp/a") | {"RAY_SERVE_ENABLE_HA_PROXY": "0"}
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "0" and env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"


def test_apply_without_a_running_server_says_so(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(apply_config, "RUNNING_DIR", tmp_path / "running")
    config = tmp_path / "config.yaml"
    config.write_text("http_options: {port: 18999}\napplications: []\n")
    assert cli.main(["apply", str(config)]) == 1
    assert "No fraud-serve is serving port 18999" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["a.yaml", "b.yaml"], ["--help"], ["apply", "a", "b"]])
def test_unknown_arguments_get_the_usage(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert cli.main(argv) == 2
    assert "fraud-serve apply [CONFIG]" in capsys.readouterr().err


def write_config(path: Path, deployments: list[dict], args: dict | None = None) -> Path:
    shipped = yaml.safe_load((PROJECT_ROOT / "configs" / "serve_config.yaml").read_text())
    (application,) = shipped["applications"]
    application["deployments"] = deployments
    application["args"] = application["args"] | (args or {})
    path.write_text(yaml.safe_dump(shipped))
    return path


def test_the_shipped_config_has_nothing_the_replicas_would_refuse() -> None:
    assert apply_config.config_errors(PROJECT_ROOT / "configs" / "serve_config.yaml") == []
    assert (
        apply_config.config_errors(PROJECT_ROOT / "configs" / "serve_config.production.yaml") == []
    )


def ingress(challenger: dict) -> list[dict]:
    return [{"name": "Ingress", "user_config": {"challenger": challenger}}]


@pytest.mark.parametrize(
    ("deployments", "args", "named"),
    [
        (ingress({"share": 1.5}), {}, "challenger.share"),
        (ingress({"mode": "canary", "share": 0.1}), {"request_timeout_s": 0.5}, "(0.5)"),
        ([{"name": "Challenger", "user_config": {"artifact_uri": ""}}], {}, "Challenger."),
        ([{"name": "FraudModel", "user_config": {"threshold": 2}}], {}, "FraudModel."),
        (
            [{"name": "FraudModel", "user_config": {"max_batch_size": 64}}],
            {},
            "FraudModel.max_ongoing_requests (64) must be at least 2 times",
        ),
        (
            [{"name": "Challenger", "max_ongoing_requests": 8, "user_config": {}}],
            {},
            "Challenger.max_ongoing_requests (8)",
        ),
    ],
    ids=["share", "canary-timeout", "challenger-model", "model", "batch", "challenger-batch"],
)
def test_apply_refuses_a_config_the_replicas_would_refuse_before_applying_it(
    tmp_path: Path, capsys: pytest.CaptureFixture, deployments: list, args: dict, named: str
) -> None:
    config = write_config(tmp_path / "config.yaml", deployments, args)
    assert named in "\n".join(apply_config.config_errors(config))
    # Refused before it looks for a running server: nothing is applied anywhere.
    assert cli.main(["apply", str(config)]) == 1
    assert "Config refused, nothing applied" in capsys.readouterr().err


def test_a_batch_size_with_room_for_two_batches_is_taken(tmp_path: Path) -> None:
    deployments = [
        {"name": "FraudModel", "max_ongoing_requests": 128, "user_config": {"max_batch_size": 64}}
    ]
    assert apply_config.config_errors(write_config(tmp_path / "config.yaml", deployments)) == []


def test_fraud_serve_refuses_to_start_a_config_the_replicas_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    deployments = [{"name": "FraudModel", "user_config": {"max_batch_size": 64}}]
    config = write_config(tmp_path / "config.yaml", deployments)
    assert cli.main([str(config)]) == 1  # before Ray or Serve is started
    assert "Config refused, nothing started" in capsys.readouterr().err


def test_apply_refuses_what_is_not_a_serve_config(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("applications:\n  - name: a\n    x: 1\n   y: 2\n")
    (tmp_path / "other.yaml").write_text("just: text\n")
    for name in ("broken.yaml", "other.yaml", "missing.yaml"):
        (error,) = apply_config.config_errors(tmp_path / name)
        assert "is not a Serve config" in error


def test_the_test_setup_imports_no_ray_before_it_configures_ray_workers() -> None:
    # Ray reads RAY_ENABLE_UV_RUN_RUNTIME_ENV when it is imported: imported first, every Ray
    # worker starts through `uv run`, and fails. The root conftest sets it on import, since
    # pytest loads a lower conftest (tests/serve's imports Ray) before any pytest_configure.
    import subprocess
    import sys

    from fraud_model.ray_env import THIS_VENV_FOR_RAY_WORKERS

    probe = subprocess.run(
        [
            sys.executable, "-c",
            "import json, os, sys, tests.conftest; "
            "print(json.dumps(['ray' in sys.modules, dict(os.environ)]))",
        ],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
        env={k: v for k, v in os.environ.items() if k not in THIS_VENV_FOR_RAY_WORKERS},
    )  # fmt: skip
    ray_imported, environment = json.loads(probe.stdout)
    assert not ray_imported
    assert THIS_VENV_FOR_RAY_WORKERS.items() <= environment.items()


def test_the_servers_sockets_are_on_a_short_path_whatever_tmpdir_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    long = tmp_path / ("t" * (100 - len(str(tmp_path)) - 1))
    long.mkdir()
    monkeypatch.setattr(local_service.tempfile, "tempdir", str(long))
    assert str(local_service.short_base()) == "/tmp"
    monkeypatch.setattr(local_service.tempfile, "tempdir", "/tmp")
    assert str(local_service.short_base()) == "/tmp"


def test_without_a_short_writable_directory_fraud_serve_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    long = tmp_path / ("t" * 60)
    long.mkdir()
    monkeypatch.setattr(local_service.tempfile, "tempdir", str(long))
    # /tmp is not writable here: only the long TMPDIR is.
    monkeypatch.setattr(local_service.os, "access", lambda path, mode: path == str(long))
    assert cli.main([]) == 1
    error = capsys.readouterr().err
    assert f"at most {local_service.MAX_BASE} characters" in error and "set TMPDIR" in error
