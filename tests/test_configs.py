"""`twin configs list|copy`: the bundled recipes are listed, copied, and validate."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.config import load_config
from twin.errors import TwinError
from twin.train.config import TrainConfig
from twin.train.recipes import copy_config, find_config, list_configs

runner = CliRunner()


def test_list_shows_bundled_recipes_with_descriptions():
    items = {c["name"]: c for c in list_configs()}
    assert {"tiny", "falcon-7b"} <= items.keys()
    assert "tiny Falcon" in items["tiny"]["description"]
    res = runner.invoke(app, ["configs", "list"])
    assert res.exit_code == 0, res.output
    assert "tiny" in res.output and "falcon-7b" in res.output


@pytest.mark.parametrize("name", ["tiny", "falcon-7b.yaml"])
def test_copy_writes_an_identical_valid_recipe(tmp_path, name):
    out = copy_config(name, tmp_path / "mine.yaml")
    assert out.read_text() == find_config(name).read_text()
    cfg = load_config(TrainConfig, out, ["lora.r=4"])  # a user edit on top still validates
    assert cfg.lora.r == 4


def test_copy_into_a_directory_and_refuses_to_overwrite(tmp_path):
    res = runner.invoke(app, ["configs", "copy", "tiny", str(tmp_path)])
    assert res.exit_code == 0, res.output
    target = tmp_path / "tiny.yaml"
    assert target.is_file()
    target.write_text("# my edits\n")
    with pytest.raises(TwinError, match="already exists"):
        copy_config("tiny", target)
    assert target.read_text() == "# my edits\n"  # nothing lost
    copy_config("tiny", target, force=True)
    assert "tiny Falcon" in target.read_text()


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(TwinError, match="bundled recipes: .*tiny"):
        copy_config("tinyy", tmp_path / "x.yaml")
    with pytest.raises(TwinError, match=r"\.yaml"):
        copy_config("tiny", tmp_path / "x.txt")
