"""docs/CONFIGURATION.md's tables state the code's defaults: every knob of the app's args, the
model's and the Ingress's user_config, the environment settings and the deployments' options is
listed, with the default the code has."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from ledger.settings import LedgerSettings
from serve_app.app import CHALLENGER_MAX_QUEUED_REQUESTS, deployment
from serve_app.config import AppArgs, IngressConfig
from serve_app.ingress import Ingress
from serve_app.model import FraudModel, ModelConfig
from serve_app.settings import ServiceSettings
from tests.helpers import PROJECT_ROOT

DOC = (PROJECT_ROOT / "docs" / "CONFIGURATION.md").read_text()


def table_after(heading: str) -> dict[str, list[str]]:
    """The first Markdown table after the line starting with `heading`: first cell -> the rest."""
    lines = DOC[DOC.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def documented(cell: str) -> Any:
    """A default as the doc writes it: `unset` is None, `512 MiB` a number of bytes, a path with
    `~` the home directory's, anything else YAML."""
    text = cell.strip("`")
    if text == "unset":
        return None
    if size := re.fullmatch(r"(\d+) MiB", text):
        return int(size.group(1)) * 1024 * 1024
    if text.startswith("~/"):
        return Path(text).expanduser()
    return yaml.safe_load(text)


@pytest.mark.parametrize(
    ("heading", "model"),
    [
        ("**Application `args`**", AppArgs),
        ("**FraudModel `user_config`**", ModelConfig),
        ("**Ingress `user_config`**", IngressConfig),
        ("**The decision ledger**", LedgerSettings),
    ],
)
def test_each_table_lists_every_field_with_the_codes_default(
    heading: str, model: type[BaseModel]
) -> None:
    rows = table_after(heading)
    assert set(rows) == set(model.model_fields), heading
    defaults = model.model_construct()
    for name, (default, *_) in rows.items():
        value = getattr(defaults, name)
        if isinstance(value, BaseModel):  # a table of its own, linked from the cell
            assert default.startswith("[") and "](#" in default, (heading, name)
            continue
        assert documented(default) == value, (heading, name)


def test_the_environment_table_lists_every_setting_with_its_default() -> None:
    rows = table_after("Environment settings")
    settings = ServiceSettings.model_construct()
    names = {f"FRAUD_{name.upper()}": name for name in ServiceSettings.model_fields}
    assert set(rows) == set(names)
    for variable, (default, *_) in rows.items():
        assert documented(default) == getattr(settings, names[variable]), variable


def test_the_deployment_options_are_those_of_the_decorators() -> None:
    rows = [
        line
        for line in DOC.splitlines()
        if re.match(r"\| (FraudModel|Challenger|Ingress) \|", line)
    ]
    stated = {}
    for line in rows:
        name, option, default, *_ = (cell.strip() for cell in line.strip("|").split("|"))
        if re.fullmatch(r"\d+", default):
            stated[(name, option.strip("`"))] = int(default)
    deployments: dict[str, Any] = {
        "FraudModel": deployment(FraudModel),
        "Ingress": deployment(Ingress),
    }
    assert len(stated) >= 6
    # The Challenger's own option (the rest are FraudModel's): read without building its
    # deployment, which would serialize the class.
    assert stated.pop(("Challenger", "max_queued_requests")) == CHALLENGER_MAX_QUEUED_REQUESTS
    for (name, option), value in stated.items():
        assert getattr(deployments[name], option) == value, (name, option)
