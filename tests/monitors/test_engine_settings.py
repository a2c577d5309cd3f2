"""``engine:`` in assay.yaml: validated with the key named; ``ray`` needs Ray at start.

The Ray refresh itself runs on a real runtime in tests/engine/test_ray_rollups.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from assay.errors import ConfigError, MissingDependencyError
from assay.monitors.config import EngineSettings, load_config
from assay.monitors.wiring import rollup_executor
from assay.service.rollups import InProcess

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "assay.yaml"
MODELS = """
models:
  - name: fraud
    tenant: demo
    monitors:
      - {name: auc, kind: metric, metric: roc_auc, condition: {op: "<", value: 0.8}}
"""


def write(tmp_path: Path, engine: str) -> Path:
    path = tmp_path / "assay.yaml"
    path.write_text(engine + MODELS)
    return path


def test_the_default_and_the_example_build_rollups_in_process(tmp_path: Path) -> None:
    assert load_config(EXAMPLE).engine == EngineSettings()  # the example's block is commented
    assert isinstance(rollup_executor(load_config(write(tmp_path, "")).engine), InProcess)
    # the commented block, once uncommented, is a valid engine
    lines = EXAMPLE.read_text().splitlines()
    first = lines.index("# engine:")
    block = []
    for line in lines[first:]:
        if not line.startswith("# "):
            break
        block.append(line[2:])
    settings = load_config(write(tmp_path, "\n".join(block) + "\n")).engine
    assert (settings.name, settings.ray_address, settings.ray_min_rows) == ("ray", "auto", 10**6)


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        ("engine: ray\n", {"name": "ray", "ray_address": None, "ray_min_rows": 1_000_000}),
        ("engine: {name: ray, ray_address: 'ray://head:10001', ray_min_rows: 0}\n",
         {"name": "ray", "ray_address": "ray://head:10001", "ray_min_rows": 0}),
        ("engine:\n  name: ray\n  ray_cpus: 2\n", {"ray_cpus": 2, "ray_address": None}),
        ("engine: {name: local}\n", {"name": "local"}),
    ],
)  # fmt: skip
def test_engine_settings_load(tmp_path: Path, engine: str, expected: dict[str, Any]) -> None:
    settings = load_config(write(tmp_path, engine)).engine
    assert {key: getattr(settings, key) for key in expected} == expected


@pytest.mark.parametrize(
    ("engine", "field", "message"),
    [
        ("engine: spark\n", "engine.name", "'local' or 'ray'"),
        ("engine: {name: ray, ray_min_rows: -5}\n", "engine.ray_min_rows", "greater than or equal"),
        ("engine: {name: ray, ray_cpus: 0}\n", "engine.ray_cpus", "greater than or equal"),
        ("engine: {ray_address: auto}\n", "engine.ray_address", "only with the ray engine"),
        ("engine: {name: local, ray_min_rows: 10}\n", "engine.ray_min_rows", "only with the ray"),
        ("engine: {name: ray, ray_address: auto, ray_cpus: 4}\n", "engine.ray_cpus",
         "local runtime"),
        ("engine: {name: ray, ray_adress: auto}\n", "engine.ray_adress", "Extra inputs"),
        ("engine: {name: ray, ray_address: ''}\n", "engine.ray_address", "at least 1"),
    ],
)  # fmt: skip
def test_engine_mistakes_name_their_key(
    tmp_path: Path, engine: str, field: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(write(tmp_path, engine))
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_engine_ray_without_ray_fails_at_start_with_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``assay serve`` and ``assay run-monitors`` stop before opening the data directory."""
    import uvicorn

    from assay.cli.main import app

    config = write(tmp_path, "engine: {name: ray, ray_address: auto}\n")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'assay\[ray\]'"):
        rollup_executor(load_config(config).engine)

    def serving(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the server started without Ray")

    monkeypatch.setattr(uvicorn, "run", serving)
    data = tmp_path / "data"
    for command in (["serve", "--config", str(config), "--data-dir", str(data)],
                    ["run-monitors", "--config", str(config), "--once", "--data-dir",
                     str(data)]):  # fmt: skip
        done = CliRunner().invoke(app, command)
        assert done.exit_code == 2, done.output
        assert "pip install 'assay[ray]'" in done.output
    assert not data.exists()


def test_without_ray_address_the_executor_joins_rays_own_ray_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As ``ray.init`` would: Ray's ``RAY_ADDRESS`` names the cluster when the config does
    not; a configured address wins. Nothing is started or contacted here."""
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert rollup_executor(EngineSettings(name="ray")).address == "127.0.0.1:6379"
    configured = EngineSettings(name="ray", ray_address="ray://head:10001")
    assert rollup_executor(configured).address == "ray://head:10001"
    monkeypatch.delenv("RAY_ADDRESS")
    assert rollup_executor(EngineSettings(name="ray")).address is None
