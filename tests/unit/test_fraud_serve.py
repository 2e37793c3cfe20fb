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


def test_the_caller_environment_wins() -> None:
    # What fraud-serve passes to `serve run`: its defaults, under whatever the caller set.
    env = cli.ray_environment("/tmp/a") | {"RAY_SERVE_ENABLE_HA_PROXY": "0"}
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "0" and env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"


def test_apply_without_a_running_server_says_so(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "RUNNING_DIR", tmp_path / "running")
    config = tmp_path / "config.yaml"
    config.write_text("http_options: {port: 18999}\napplications: []\n")
    assert cli.main(["apply", str(config)]) == 1
    assert "No fraud-serve is serving port 18999" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["a.yaml", "b.yaml"], ["--help"], ["apply", "a", "b"]])
def test_unknown_arguments_get_the_usage(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert cli.main(argv) == 2
    assert "fraud-serve apply [CONFIG]" in capsys.readouterr().err
