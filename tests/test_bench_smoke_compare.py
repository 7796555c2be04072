"""Smoke tests of the comparison benchmarks and the `make bench` runner (figures live in bench/RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is a folder of the repo, not an installed package
    sys.path.insert(0, str(ROOT))


pytestmark = pytest.mark.slow  # runs the comparisons as subprocesses


def test_runner_lists_modules_in_order():
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--list"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    names = [line.split()[0] for line in out if line.strip()]
    # The stage benchmarks come first, then the comparisons, each once.
    assert names[:4] == ["bench_import", "bench_prepare", "bench_train", "bench_serve"]
    assert {"compare_train", "compare_data", "compare_generate"} <= set(names)
    assert len(names) == len(set(names))


def test_runner_tolerates_a_missing_module():
    r = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "bench_does_not_exist", "--quick", "--no-setup"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "bench/bench_does_not_exist.py is missing; skipped" in r.stdout
    assert "bench summary" in r.stdout


def test_runner_reports_a_failing_module():
    import bench.__main__ as runner

    # A module that raises: the runner reports it and returns 1 without stopping.
    status, _ = runner.run_module("compare_train", ["--tools", "nonsense"])
    assert status.startswith("failed")


def test_results_block_replaces_only_its_own_rows(tmp_path):
    from bench.baselines.common import SECTION, write_block

    f = tmp_path / "RESULTS.md"
    f.write_text(
        f"# R\n\n<!-- section: train (owner: train) -->\nkeep me\n\n{SECTION}\n\n<!-- section: z (owner: z) -->\nz\n"
    )
    write_block("train", "| a | 1 |", path=f)
    write_block("gen", "| g | 2 |", path=f)
    write_block("train", "| a | 3 |", path=f)
    text = f.read_text()
    assert "keep me" in text and text.rstrip().endswith("z")
    assert "| a | 1 |" not in text and "| a | 3 |" in text and "| g | 2 |" in text
    assert text.index(SECTION) < text.index("| a | 3 |") < text.index("<!-- section: z")
    # a section added between the compare section's start and its blocks: the block is replaced where it is
    f.write_text(text.replace(SECTION, f"{SECTION}\n\n<!-- section: y (owner: y) -->\ny\n"))
    write_block("gen", "| g | 4 |", path=f)
    text = f.read_text()
    assert "| g | 2 |" not in text and text.count("<!-- compare:gen -->") == 1
    assert text.index("<!-- section: y") < text.index("| g | 4 |") < text.index("<!-- section: z")


def test_litgpt_config_maps_the_tiny_falcon():
    from bench.baselines.litgpt_driver import litgpt_config

    hf = {
        "model_type": "falcon", "hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
        "vocab_size": 691, "multi_query": True, "parallel_attn": True, "new_decoder_architecture": False,
        "alibi": False, "bias": False, "ffn_hidden_size": 512, "max_position_embeddings": 1024,
        "rope_parameters": {"rope_theta": 10000.0},
    }  # fmt: skip
    c = litgpt_config(hf, "falcon-7b-twin-tiny")
    assert c["n_query_groups"] == 1 and c["shared_attention_norm"] and c["parallel_residual"]
    assert c["padded_vocab_size"] == 691 and c["intermediate_size"] == 512 and c["n_embd"] == 128


def test_litgpt_config_maps_the_tiny_llama():
    from bench.baselines.litgpt_driver import litgpt_config

    hf = {
        "model_type": "llama", "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 4,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 2048, "rms_norm_eps": 1e-5,
        "max_position_embeddings": 1024, "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"},
        "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False,
    }  # fmt: skip
    c = litgpt_config(hf, "Llama-3-twin-tiny")
    assert (c["n_query_groups"], c["head_size"], c["rope_base"]) == (2, 32, 500000)
    assert (
        c["mlp_class_name"] == "LLaMAMLP" and c["norm_class_name"] == "RMSNorm" and not c["parallel_residual"]
    )
    with pytest.raises(SystemExit, match="Llama-3"):  # litgpt's Llama 3 BOS rule keys on the name
        litgpt_config(hf, "tiny-llama")
    with pytest.raises(SystemExit, match="untied"):
        litgpt_config({**hf, "tie_word_embeddings": True}, "Llama-3-twin-tiny")


def test_ratio_is_against_each_peers_strongest_configuration():
    from bench.compare_train import ratio_line, strongest

    summary = {
        "twin": {"tokens_per_s": 9000.0},
        "trainer": {"tokens_per_s": 3000.0},
        "trainer+best": {"tokens_per_s": 6000.0},
        "litgpt": {"tokens_per_s": 4500.0},
        "litgpt+best": {"tokens_per_s": 4000.0},
    }
    assert strongest(summary) == {"trainer": ("trainer+best", 6000.0), "litgpt": ("litgpt", 4500.0)}
    line = ratio_line("Tiny Falcon", summary)
    assert "strongest peer = 1.50x trainer at its best (`trainer+best`" in line
    assert line.endswith("2.00x litgpt at its best (`litgpt`, 4,500 tok/s)")


def test_twin_ratio_pairs_runs_of_the_same_round():
    """Load drifts between rounds: twin's ratio is taken round by round, then the median."""
    from bench.compare_train import summarize

    runs = {
        "twin": [{"tokens_per_s": 10.0}, {"tokens_per_s": 20.0}, {"tokens_per_s": 30.0}],
        "trainer": [{"tokens_per_s": 4.0}, {"tokens_per_s": 40.0}, {"tokens_per_s": 20.0}],
    }
    s = summarize(runs)
    assert s["trainer"]["twin_ratio"] == 1.5  # per round 2.5, 0.5, 1.5 (ratio of medians: 20 / 20)
    assert s["trainer"]["tokens_per_s"] == 20.0 and s["twin"]["twin_ratio"] is None


@pytest.mark.slow
def test_compare_train_quick(tmp_path):
    """twin and Trainer+peft (defaults and at its best) on both tiny bases, 2 steps each, own processes."""
    from bench import compare_train

    out = tmp_path / "ct.json"
    report = compare_train.main(
        ["--quick", "--tools", "twin,trainer,trainer+best", "--work", str(tmp_path / "w"), "--json", str(out)]
    )
    assert set(report["models"]) == {"falcon", "llama"}
    for arch, template in (("falcon", "plain-v1"), ("llama", "chat-v1")):
        m = report["models"][arch]
        assert m["settings"]["template"] == template
        # The Trainer was held to twin's exact token ids and reply masks before anything ran.
        assert m["meta"]["pairs"].startswith("Trainer token ids and reply masks = twin's for all")
        assert set(m["summary"]) == {"twin", "trainer", "trainer+best"}
        for row in m["summary"].values():
            assert row["tokens_per_s"] > 0 and row["max_rss_mb"] > 100 and row["wall_s"] > 0
            assert 0 < row["train_loss"] < 20
        assert m["runs"]["trainer+best"][0]["settings"]["sampling"] == "group_by_length"
        assert m["runs"]["trainer"][0]["settings"]["sampling"] == "random"
    saved = json.loads(out.read_text())
    assert saved["models"]["llama"]["settings"]["targets"] == ["q_proj", "v_proj"]


@pytest.mark.slow
@pytest.mark.skipif(
    not (ROOT / ".venv-bench" / "bin" / "python").exists(),
    reason=".venv-bench (litgpt) not set up: python -m bench setup",
)
def test_compare_train_quick_litgpt(tmp_path):
    """Both tiny bases through litgpt's converter (logits and token ids checked) and `litgpt finetune_lora`."""
    from bench import compare_train

    report = compare_train.main(
        ["--quick", "--tools", "litgpt+best", "--work", str(tmp_path / "w"), "--json", str(tmp_path / "ct.json")]
    )  # fmt: skip
    for arch in ("falcon", "llama"):
        m = report["models"][arch]
        assert "max |logit diff| vs HF" in m["meta"]["litgpt"]
        assert "SFTDataset token ids and reply masks = twin's" in m["meta"]["litgpt"]
        row = m["summary"]["litgpt+best"]
        assert row["tokens_per_s"] > 0 and 0 < row["train_loss"] < 20


def test_reference_prep_matches_twin_rules(tmp_path):
    """The data baseline: sessions at gaps, merged turns, forwarded/media skipped, hash split."""
    from bench.baselines.reference_prep import prepare

    me, bob = "user1", "user2"

    def msg(i, t, who, text, **kw):
        return {"id": i, "type": "message", "date_unixtime": str(t), "from_id": who, "text": text, **kw}

    day = 86400
    export = {
        "personal_information": {"user_id": 1},
        "chats": {
            "list": [
                {"id": 2, "name": "Bob", "type": "personal_chat", "messages": [
                    msg(1, 0, bob, "hi"), msg(2, 10, bob, [{"type": "bold", "text": "there"}]),
                    msg(3, 20, me, "hey"), msg(4, 30, me, "what's up"),
                    msg(5, 40, bob, "fwd", forwarded_from="X"), msg(6, 50, bob, ""),  # no turn
                    msg(7, 60, bob, "dinner?"), msg(8, 70, me, "sure"),
                    msg(9, 70 + 2 * day, bob, "new day"), msg(10, 80 + 2 * day, me, "yes"),
                ]},
                {"id": 3, "name": "G", "type": "private_group", "messages": [msg(1, 0, bob, "x"), msg(2, 1, me, "y")]},
            ]
        },
    }  # fmt: skip
    f = tmp_path / "result.json"
    f.write_text(json.dumps(export))
    counts = prepare(f, tmp_path / "out", val_fraction=0.0)
    assert counts == {"messages": 10, "sessions": 2, "examples": 3, "train": 3, "val": 0}
    rows = [json.loads(x) for x in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert rows[0]["instruction"] == "hi\nthere" and rows[0]["response"] == "hey\nwhat's up"
    assert rows[1]["context"] == [
        {"role": "them", "text": "hi\nthere"},
        {"role": "me", "text": "hey\nwhat's up"},
    ]
    assert rows[2]["session"] == "2-1" and rows[2]["context"] == []


@pytest.mark.slow
def test_compare_data_quick(tmp_path):
    from bench import compare_data

    report = compare_data.main(
        ["--quick", "--work", str(tmp_path / "w"), "--json", str(tmp_path / "cd.json")]
    )
    assert report["same_counts"], report["summary"]
    for row in report["summary"].values():
        assert row["messages_per_s"] > 0 and row["max_rss_mb"] > 10 and row["examples"] > 0


@pytest.mark.slow
def test_compare_generate_quick(tmp_path):
    from bench import compare_generate as cg

    report = cg.main(["--quick", "--archs", "falcon", "--no-llama-cpp", "--work", str(tmp_path / "w"),
                      "--json", str(tmp_path / "cg.json")])  # fmt: skip
    s = report["summary"]
    assert s["ratios"]["eight_mixed_same"] == 1.0  # 8 mixed replies: the same at once as in series
    assert report["archs"]["falcon"]["flat"]["tokens"] == 64
    for name in (cg.SERIAL, cg.BATCHED):
        for c in (1, 8, 32):
            row = s[f"{name}|{c}"]
            assert row["tokens_per_s"] > 0 and row["p95_s"] >= row["p50_s"] > 0
    assert s[f"{cg.BATCHED}|32"]["requests"] == 32
    assert s["mixed|two adapters"]["tokens_per_s"] > 0
    assert report["eval"]["replies_equal"] and report["eval"]["examples"] == 8
    md = cg.markdown(s, report["eval"], report["meta"], [1, 8, 32])
    assert f"| {cg.BATCHED} (--max-batch 0) | 32 |" in md and "twin eval" in md
