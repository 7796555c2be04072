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


RECIPES = ["falcon-7b", "llama-3.1-8b", "llama-3.1-8b-qlora", "qwen2.5-7b", "qwen2.5-7b-qlora", "tiny"]


def test_list_shows_bundled_recipes_with_descriptions():
    items = {c["name"]: c for c in list_configs()}
    assert list(items) == RECIPES  # sorted by name: each LoRA recipe right before its QLoRA variant
    assert "tiny Falcon" in items["tiny"]["description"]
    # one line each on when to pick it
    assert "Russian or Chinese" in items["qwen2.5-7b"]["description"]
    assert (
        "English-first" in items["llama-3.1-8b"]["description"]
        and "gated" in items["llama-3.1-8b"]["description"]
    )
    assert (
        "8-12 GB" in items["qwen2.5-7b-qlora"]["description"]
        and "8-12 GB" in items["llama-3.1-8b-qlora"]["description"]
    )
    res = runner.invoke(app, ["configs", "list"])
    assert res.exit_code == 0, res.output
    for name in RECIPES:
        (line,) = [x for x in res.output.splitlines() if x.startswith(name + " ")]
        assert line.split(None, 1)[1] == items[name]["description"]


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_loads_into_the_train_config(name):
    cfg = load_config(TrainConfig, find_config(name))
    assert cfg.precision == "auto" and cfg.data.template == "auto" and cfg.lora.target_modules == "auto"
    assert cfg.quantize == ("nf4" if name.endswith("-qlora") else None)
    if name != "tiny":
        assert cfg.gradient_checkpointing and cfg.base.startswith("checkpoints/")
        header = find_config(name).read_text().split("\nbase:", 1)[0]
        hub_id = cfg.base.removeprefix("checkpoints/")
        assert f"make download MODEL={hub_id}" in header or name == "falcon-7b"


# Each big recipe's header quotes the GPU memory of its setup from bench/bench_train.py's estimator.
MEMORY = {
    "falcon-7b": ("Falcon-7B", {}),
    "llama-3.1-8b": ("Llama-3.1-8B", {}),
    "llama-3.1-8b-qlora": ("Llama-3.1-8B", {"quant": "nf4", "micro": 2}),
    "qwen2.5-7b": ("Qwen2.5-7B", {}),
    "qwen2.5-7b-qlora": ("Qwen2.5-7B", {"quant": "nf4", "micro": 2}),
}


@pytest.mark.parametrize("name", sorted(MEMORY))
def test_recipe_memory_figures_come_from_the_estimator(name):
    from bench.bench_train import BASES, lora_memory, lora_params

    base, kw = MEMORY[name]
    header = find_config(name).read_text().split("\nbase:", 1)[0]
    cfg = load_config(TrainConfig, find_config(name))
    assert cfg.micro_batch_size == kw.get("micro", 4) and cfg.lora.r == 16
    assert f"{lora_memory(BASES[base], **kw)['total']:.1f} GiB" in header
    if "quant" not in kw:  # the no-checkpointing figure too
        assert f"{lora_memory(BASES[base], checkpointing=False)['total']:.1f} GiB" in header
    if base != "Falcon-7B":  # every attention and MLP linear: ~40M parameters at r=16
        assert f"{lora_params(BASES[base]) / 1e6:.1f}M parameters" in header


def test_gated_model_without_login_says_how_to_log_in(tmp_path, monkeypatch):
    """The real huggingface_hub exceptions, made from the Hub's real answers (no network here)."""
    import httpx2
    import huggingface_hub
    from huggingface_hub.utils import hf_raise_for_status

    repo = "meta-llama/Llama-3.1-8B-Instruct"
    url = f"https://huggingface.co/{repo}/resolve/main/config.json"

    def answer(status: int, headers: dict):
        response = httpx2.Response(status, headers=headers, request=httpx2.Request("GET", url))
        try:
            hf_raise_for_status(response)
        except Exception as e:  # noqa: BLE001 - whichever class the Hub's answer maps to
            return e
        raise AssertionError("hf_raise_for_status accepted an error status")

    cases = {
        "gated": answer(401, {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access restricted"}),
        "not accepted": answer(403, {"X-Error-Code": "GatedRepo"}),
        "bad token": answer(401, {"X-Error-Message": "Invalid credentials in Authorization header"}),
    }
    assert type(cases["gated"]).__name__ == "GatedRepoError"
    for case, exc in cases.items():

        def refuse(self, *a, _exc=exc, **k):
            raise _exc

        monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", refuse)
        res = runner.invoke(app, ["model", "download", repo, "--out", str(tmp_path / "m")])
        assert isinstance(res.exception, TwinError), (case, res.output)  # the CLI's main exits 2 on it
        msg = str(res.exception)
        assert "\n" not in msg, case
        assert "hf auth login" in msg and "HF_TOKEN" in msg and f"https://huggingface.co/{repo}" in msg, case
        assert not (tmp_path / "m").exists()


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
