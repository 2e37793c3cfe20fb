"""The Ingress's user_config, applied in place by its reconfigure() (no Ray: the deployment
handles are fakes and Ray's metrics are replaced by recorders)."""

import asyncio
import types
from collections.abc import Iterator
from typing import Any

import pytest

from serve_app.config import AppArgs
from serve_app.ingress import Ingress


class FakeMethod:
    def __init__(self, result: Any) -> None:
        self.result = result

    def remote(self, *_: object) -> Any:
        async def answer() -> Any:
            return self.result

        return answer()


def fake_handle(version: str) -> Any:
    return types.SimpleNamespace(describe=FakeMethod({"model_version": version}))


class Recorder:
    def __init__(self, *_: object, **__: object) -> None:
        pass

    def inc(self, *_: object, **__: object) -> None:
        pass


@pytest.fixture
def ingress(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An Ingress replica's user object as Serve builds it: __init__, then the app, then
    reconfigure() (called by the tests)."""
    from ray.serve import metrics

    monkeypatch.setattr(metrics, "Counter", Recorder)
    # The class the decorators wrapped: Serve's wrapper adds an async __init__ around it.
    cls = next(c for c in Ingress.func_or_class.__mro__ if "__serve_build_asgi_app__" in vars(c))
    replica = cls.__new__(cls)
    # No ledger: outside Serve there is no replica to name its files after.
    args = AppArgs(allow_anonymous=True, ledger=None)
    cls.__init__(replica, fake_handle("champ"), args, fake_handle("chall"))
    replica.__serve_build_asgi_app__()
    yield replica
    asyncio.run(replica.__del__())  # as Serve stops a replica


# Serve awaits the Ingress's async __del__ when it stops a replica (above, as it does); Python's
# collector calls it again when the object goes, and drops the coroutine that call makes.
pytestmark = pytest.mark.filterwarnings("ignore:coroutine 'Ingress.__del__' was never awaited")


def challenger_of(replica: Any) -> dict | None:
    return asyncio.run(replica._shadowing.describe_challenger())


def test_a_challenger_config_applies_in_place_and_none_turns_it_off(ingress: Any) -> None:
    assert challenger_of(ingress) is None
    asyncio.run(ingress.reconfigure({"challenger": {"share": 0.25}}))
    info = challenger_of(ingress)
    assert info["mode"] == "shadow" and info["share"] == 0.25
    assert info["model"] == {"model_version": "chall"}
    asyncio.run(ingress.reconfigure({"challenger": {"mode": "canary", "share": 0.5}}))
    assert challenger_of(ingress)["mode"] == "canary"
    asyncio.run(ingress.reconfigure({}))
    assert challenger_of(ingress) is None


def test_a_bad_config_fails_the_start_naming_the_key(ingress: Any) -> None:
    with pytest.raises(RuntimeError, match=r"(?s)Ingress cannot start: .*challenger\.share"):
        asyncio.run(ingress.reconfigure({"challenger": {"share": 2}}))


def test_a_bad_update_is_refused_and_the_last_good_config_stays(
    ingress: Any, caplog: pytest.LogCaptureFixture
) -> None:
    asyncio.run(ingress.reconfigure({"challenger": {"share": 0.25}}))
    for bad in (
        {"challenger": {"share": 2}},
        {"challenger": {"mode": "canary", "share": 0.1, "timeout_s": 2}},  # >= request timeout
        {"shadow": True},
    ):
        asyncio.run(ingress.reconfigure(bad))
        assert challenger_of(ingress)["share"] == 0.25
    refusals = [r for r in caplog.records if "user_config refused" in r.getMessage()]
    assert len(refusals) == 3
