"""Config loading: YAML + dotted --set overrides, unknown keys and bad values name the field."""

import pytest
from pydantic import Field

from twin.config import StageConfig, load_config, parse_overrides
from twin.errors import TwinError


class Lora(StageConfig):
    r: int = Field(16, ge=1)
    alpha: float = 32


class Run(StageConfig):
    lr: float = 1e-4
    lora: Lora = Lora()
    targets: list[str] = ["query_key_value"]


def test_overrides_parse_yaml_scalars_into_nested_dicts():
    assert parse_overrides(["lora.r=8", "lr=2e-4", "targets=[a, b]"]) == {
        "lora": {"r": 8},
        "lr": 2e-4,
        "targets": ["a", "b"],
    }


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("lr: 0.001\nlora:\n  r: 4\n  alpha: 8\n")
    cfg = load_config(Run, p, ["lora.r=2"])
    assert (cfg.lr, cfg.lora.r, cfg.lora.alpha) == (0.001, 2, 8)


def test_unknown_key_and_bad_value_name_file_and_field(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("lora:\n  rank: 4\n")
    with pytest.raises(TwinError, match=r"run.yaml: unknown key 'lora.rank'"):
        load_config(Run, p)
    with pytest.raises(TwinError, match=r"lora.r: Input should be greater than or equal to 1"):
        load_config(Run, None, ["lora.r=0"])
    with pytest.raises(TwinError, match="expected key=value"):
        load_config(Run, None, ["lora.r"])


def test_missing_and_malformed_yaml(tmp_path):
    with pytest.raises(TwinError, match="config file not found"):
        load_config(Run, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [1, 2\n")
    with pytest.raises(TwinError, match=r"bad.yaml:\d+:\d+: not valid YAML"):
        load_config(Run, bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(TwinError, match="mapping"):
        load_config(Run, scalar)
