"""`twin merge`: the merged dir loads with plain transformers and gives the adapter-on-base logits."""

from __future__ import annotations

import json

import pytest
import torch

from twin.errors import TwinError


def test_merged_matches_adapter_on_base_and_loads_without_peft(tiny_base, random_lora_adapter, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from twin.model.load import load_base
    from twin.publish.merge import merge_adapter

    out = merge_adapter(None, random_lora_adapter, tmp_path / "merged", max_shard_size="100KB")
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) > 1 and (out / "model.safetensors.index.json").is_file()  # --max-shard-size honoured
    assert not (out / "adapter_config.json").exists()
    info = json.loads((out / "twin_merged.json").read_text())
    assert info["template"] == "plain-v1"

    tok = AutoTokenizer.from_pretrained(str(out))  # tokenizer included
    ids = torch.tensor([tok("hey! how are you doing today?")["input_ids"]])
    merged = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    assert type(merged).__name__ == "FalconForCausalLM"

    base, _ = load_base(tiny_base)
    with torch.no_grad():
        base_logits = base(ids).logits
    on_base = PeftModel.from_pretrained(base, str(random_lora_adapter)).eval()
    with torch.no_grad():
        want = on_base(ids).logits
        got = merged(ids).logits
    assert (want - base_logits).abs().max() > 1e-3  # the adapter matters...
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)  # ...and the merge keeps it exactly


def test_merge_refuses_foreign_dir_and_wrong_base(tiny_base, random_lora_adapter, tmp_path):
    from twin.publish.merge import merge_adapter

    foreign = tmp_path / "important"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(TwinError, match="not a twin merge output"):
        merge_adapter(tiny_base, random_lora_adapter, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"

    other = tmp_path / "other-base"
    other.mkdir()
    for f in tiny_base.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((other / "config.json").read_text())
    cfg["layer_norm_epsilon"] = 1e-6
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(TwinError, match="different base"):
        merge_adapter(other, random_lora_adapter, tmp_path / "m2")


def test_cli_merge_then_export_gguf(random_lora_adapter, tmp_path):
    from gguf import GGUFReader
    from typer.testing import CliRunner

    from twin.cli import app

    runner = CliRunner()
    merged = tmp_path / "merged" / "me"
    res = runner.invoke(
        app, ["publish", "merge", "--adapter", str(random_lora_adapter), "--out", str(merged)]
    )
    assert res.exit_code == 0, res.output
    assert "from_pretrained" in res.output
    assert "Writing model shards" not in res.output  # a tiny merge writes in a blink
    # rerun over its own output (here under the older name) is allowed, and leaves no temp dirs behind
    res = runner.invoke(app, ["merge", "--adapter", str(random_lora_adapter), "--out", str(merged)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in merged.parent.iterdir()) == ["me"]

    out = tmp_path / "gguf"
    res = runner.invoke(app, ["publish", "gguf", "--model", str(merged), "--out", str(out), "--type", "q8_0"])
    assert res.exit_code == 0, res.output
    # a few MB write in a blink: no bars, and not the gguf library's notes on its file layout
    assert "Little Endian" not in res.output and "Writing the following files" not in res.output
    assert "writing me-q8_0.gguf" not in res.output
    # `twin export-gguf` is the same command under its older name
    old = runner.invoke(
        app, ["export-gguf", "--model", str(merged), "--out", str(tmp_path / "g2"), "--name", "x"]
    )
    assert old.exit_code == 0, old.output
    assert sorted(p.name for p in (tmp_path / "g2").iterdir()) == ["Modelfile", "x-f16.gguf"]
    r = GGUFReader(out / "me-q8_0.gguf")
    assert r.fields["twin.template"].contents() == "plain-v1"  # read from twin_merged.json
    assert r.fields["general.name"].contents() == "me"
    assert "FROM ./me-q8_0.gguf" in (out / "Modelfile").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "me-q8_0.gguf"]


@pytest.mark.parametrize(
    ("option", "value"), [("--max-shard-size", "2XB"), ("--max-shard-size", "0GB"), ("--dtype", "float64")]
)
def test_a_bad_merge_option_is_one_line_naming_it_and_nothing_is_written(
    random_lora_adapter, tmp_path, option, value
):
    """`--max-shard-size 2XB` was huggingface_hub's ValueError traceback after the load and merge;
    `--dtype float64` an error that named no option."""
    from typer.testing import CliRunner

    from twin.cli import app

    out = tmp_path / "merged"
    res = CliRunner().invoke(
        app, ["publish", "merge", "--adapter", str(random_lora_adapter), "--out", str(out), option, value]
    )
    assert isinstance(res.exception, TwinError), res.exception
    assert str(res.exception).startswith(f"{option} {value}: ")
    assert not out.exists()


def test_the_printed_ollama_command_works_as_written_in_a_dir_with_spaces(random_lora_adapter, tmp_path):
    """`cd /x/my gguf && ollama create ...` was printed unquoted: pasted, `cd` failed (too many
    arguments). The printed line is run by bash here, with `ollama` a stub that reports its cwd."""
    import shutil
    import subprocess

    from typer.testing import CliRunner

    from twin.cli import app

    runner = CliRunner()
    merged, out = tmp_path / "my merged", tmp_path / "my twin's gguf"
    assert (
        runner.invoke(
            app, ["publish", "merge", "--adapter", str(random_lora_adapter), "--out", str(merged)]
        ).exit_code
        == 0
    )
    res = runner.invoke(app, ["publish", "gguf", "--model", str(merged), "--out", str(out)])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith("Modelfile:")).split("  ->  ", 1)[1]
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "ollama").write_text('#!/bin/sh\npwd; ls "$4"\n')
    (stub / "ollama").chmod(0o755)
    ran = subprocess.run([shutil.which("bash"), "-c", line], capture_output=True, text=True,
                         env={"PATH": f"{stub}:/usr/bin:/bin"})  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [str(out), "Modelfile"]


def test_gguf_file_names_have_no_space_and_name_cannot_leave_out(random_lora_adapter, tmp_path):
    """The default name was the merged dir's, spaces and all (`FROM ./my merged-f16.gguf`, which
    Ollama's Modelfile parser does not take), and `--name ../x` wrote the file outside --out."""
    from typer.testing import CliRunner

    from twin.cli import app

    runner = CliRunner()
    merged = tmp_path / "my merged"
    assert (
        runner.invoke(app, ["merge", "--adapter", str(random_lora_adapter), "--out", str(merged)]).exit_code
        == 0
    )
    out = tmp_path / "gguf"
    assert runner.invoke(app, ["publish", "gguf", "--model", str(merged), "--out", str(out)]).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "my-merged-f16.gguf"]
    assert "FROM ./my-merged-f16.gguf\n" in (out / "Modelfile").read_text()

    res = runner.invoke(
        app, ["publish", "gguf", "--model", str(merged), "--out", str(tmp_path / "g2"), "--name", "../x"]
    )
    assert isinstance(res.exception, TwinError) and str(res.exception).startswith(
        "--name '../x': use letters"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gguf", "my merged"]


def test_out_that_is_or_holds_an_input_is_refused_even_with_force(tiny_base, random_lora_adapter, tmp_path):
    """`--out ADAPTER --force` replaced the trained adapter with the merged model (the output dir is
    swapped in whole); --out the base's parent would have taken the base with it."""
    import shutil

    from twin.publish.merge import merge_adapter

    adapter = shutil.copytree(random_lora_adapter, tmp_path / "me")
    before = sorted(p.name for p in adapter.iterdir())
    with pytest.raises(TwinError, match="is or holds the adapter dir"):
        merge_adapter(tiny_base, adapter, adapter, force=True)
    with pytest.raises(TwinError, match="is or holds the base dir"):
        merge_adapter(tiny_base, adapter, tiny_base.parent, force=True)
    assert sorted(p.name for p in adapter.iterdir()) == before and (tiny_base / "config.json").is_file()
