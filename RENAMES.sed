# Import rewrites for the moves on branch `struct` (issue 23). Apply to code written before the merge:
#   git ls-files '*.py' '*.md' '*.toml' Makefile | xargs sed -i -f RENAMES.sed
# Every line is idempotent (running it twice changes nothing more). Then `ruff check --fix` (import order).
# --- step 2: shared dev helpers -> devkit/ (tests and bench), test-only helpers -> tests/helpers/
s/\bfrom \(tests\.\)\?live_server import/from devkit.live_server import/g
s/\btests\.live_server\b/devkit.live_server/g
s/\bfrom \(tests\.\)\?adapters import/from devkit.adapters import/g
s/\btests\.adapters\b/devkit.adapters/g
s/\bfrom \(tests\.\)\?synthetic_chats import/from devkit.synthetic_chats import/g
s/\btests\.synthetic_chats\b/devkit.synthetic_chats/g
s/\bfrom \(tests\.\)\?fake_telethon import/from helpers.fake_telethon import/g
s/\btests\.fake_telethon\b/helpers.fake_telethon/g
s/\bfrom \(tests\.\)\?styled_chats import/from helpers.styled_chats import/g
s/\btests\.styled_chats\b/helpers.styled_chats/g
# conftest.py keeps only fixtures and hooks; its two helpers (tiny_train_config, write_processed) are here:
s/\bfrom conftest import\b/from helpers.training import/g
s/\bfrom test_serve_api import make_other_adapter\b/from helpers.other_adapter import make_other_adapter/g
s/\bfrom test_web_app import write_eval_samples\b/from helpers.eval_samples import write_eval_samples/g
s/\bfrom \(tests\.\)\?test_eval_run import VAL, _cfg\b/from helpers.eval_inputs import VAL, eval_config/g
# ...and inside tests/test_eval_run.py and tests/test_feedback.py (only there): s/\b_cfg(/eval_config(/g
# bench used private names: they are public now (twin/model/fingerprint.py, twin/prepare/pipeline.py;
# `_compute(`/`_dumps(` are generic: check the diff if a new module defines its own)
s/\bfingerprint import _compute\b/fingerprint import compute_digest/g
s/\b_compute(/compute_digest(/g
s/\b_read_records\b/read_records/g
s/\b_dumps(/dumps_line(/g
s/\bimport _dumps\b/import dumps_line/g
s/, _dumps\b/, dumps_line/g
s#\btests/live_server\.py#devkit/live_server.py#g
s#\btests/adapters\.py#devkit/adapters.py#g
s#\btests/synthetic_chats\.py#devkit/synthetic_chats.py#g
s#\btests/fake_telethon\.py#tests/helpers/fake_telethon.py#g
s#\btests/styled_chats\.py#tests/helpers/styled_chats.py#g
# --- step 3: shared record format and Telegram client below the stages (twin/sources/ is only the export stage)
#     telegram_client.py is renamed twin/telegram.py: "telegram_api" (the export stage) vs "telegram_client" read as a pair
s/\btwin\.sources\.records\b/twin.records/g
s/\btwin\.sources\.telegram_client\b/twin.telegram/g
s/\bfrom twin\.sources import records\b/from twin import records/g
s/\bfrom twin\.sources import telegram_client\b/from twin import telegram as telegram_client/g
s/^\(\s*\)from twin\.sources import \(.*\), telegram_client$/\1from twin import telegram as telegram_client\n\1from twin.sources import \2/
# twin imports absolutely; the two relative rules are for new modules under twin/sources/ (no other records.py exists)
s/^\(\s*\)from \.\.\?records import/\1from twin.records import/
s/^\(\s*\)from \.\.\?telegram_client import/\1from twin.telegram import/
s#\btwin/sources/records\.py#twin/records.py#g
s#\btwin/sources/telegram_client\.py#twin/telegram.py#g
s#\bsources/records\.py#records.py#g
s#\bsources/telegram_client\.py#telegram.py#g
# --- step 4: inference is its own package (twin/model/ keeps building and loading bases)
s/\btwin\.model\.\(generate\|batch\|multi_lora\)\b/twin.inference.\1/g
s/\bfrom twin\.model import \(generate\|batch\|multi_lora\)\b/from twin.inference import \1/g
# (relative: only for a new module inside twin/inference/ or twin/model/; twin imports absolutely)
s/^\(\s*\)from \.\(generate\|batch\|multi_lora\) import/\1from twin.inference.\2 import/
s#\btwin/model/\(generate\|batch\|multi_lora\)\.py#twin/inference/\1.py#g
s#\bmodel/\(generate\|batch\|multi_lora\)\.py#inference/\1.py#g
# --- not sed-able, for the lead: tests that used the module fixtures `engine` (test_serve_api/test_serve_batch)
# or started their own `twin serve` now get the session ones from conftest.py (`engine`, `twin_server`;
# token and options in tests/helpers/server.py); the module fixtures `server` (test_drafts) and `live`
# (test_serve_process) remain as aliases.
