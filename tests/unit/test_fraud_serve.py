"""`fraud-serve` runs `serve run` with the fast ingress, isolated from any other server."""

import pytest

from serve_app import cli


def test_fast_ingress_is_on_and_haproxy_state_is_private() -> None:
    first, second = cli.ray_environment("/tmp/a"), cli.ray_environment("/tmp/b")
    assert first["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    assert first["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    assert first["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] == "0"
    assert first["RAY_SERVE_HAPROXY_SOCKET_PATH"].startswith("/tmp/a/")
    # Two servers at once (the user's and the tests') never share HAProxy files or ports.
    for name in ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT"):
        assert first[name] != "8404" and first[name] != "9101"
    assert first["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"] != second["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]


def test_caller_environment_wins_and_config_path_is_absolute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    executed: list[list[str]] = []
    # A private environment: what main() sets must not reach this test session's own Ray.
    monkeypatch.setattr(cli.os, "environ", {"RAY_SERVE_ENABLE_HA_PROXY": "0"})
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: executed.append(argv))
    monkeypatch.setattr(cli.sys, "argv", ["fraud-serve", "configs/serve_config.yaml"])
    monkeypatch.chdir(cli.PROJECT_ROOT)
    cli.main()
    (argv,) = executed
    assert argv[1:] == ["run", str(cli.PROJECT_ROOT / "configs" / "serve_config.yaml")]
    assert cli.os.environ["RAY_SERVE_ENABLE_HA_PROXY"] == "0"
    assert cli.os.environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
