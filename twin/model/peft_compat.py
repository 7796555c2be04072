"""Two fixes to peft 0.21's trainable tokens (``lora.train_embeddings``) when one model holds several
adapters, as ``twin serve`` does: a twin with embedding rows beside a plain LoRA (or the bare base).

peft assumes every loaded adapter has the rows: loading a plain LoRA after one that has them fails
(``KeyError: ...trainable_tokens_delta``: the wrapper asks for keys the plain adapter never saved),
and a row whose adapter has no rows fails in ``get_merged_weights``. Here an adapter without rows
simply leaves the embedding (and the tied head) as the base's: what it was trained on. Applied once,
by :func:`twin.model.load.load_base` (every base that adapters are loaded onto comes through it).
"""

from __future__ import annotations

from typing import Any

_APPLIED = False


def patch_trainable_tokens() -> None:
    """Make peft's trainable tokens ignore adapters that have none (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer
    from peft.utils.other import TrainableTokensWrapper

    load_map = TrainableTokensWrapper.adapter_state_dict_load_map
    merged_weights = TrainableTokensLayer.get_merged_weights
    check_overlap = TrainableTokensLayer._check_overlapping_tokens

    def adapter_state_dict_load_map(self: Any, adapter_name: str) -> dict:
        # as peft's ModulesToSaveWrapper does: an adapter this wrapper does not serve loads nothing here
        return load_map(self, adapter_name) if adapter_name in self._adapters else {}

    def get_merged_weights(self: Any, active_adapters: Any) -> Any:
        return merged_weights(self, [a for a in active_adapters if a in self.token_indices])

    def _check_overlapping_tokens(self: Any, adapter_names: list[str]) -> None:
        check_overlap(self, [a for a in adapter_names if a in self.token_indices])

    TrainableTokensWrapper.adapter_state_dict_load_map = adapter_state_dict_load_map
    TrainableTokensLayer.get_merged_weights = get_merged_weights
    TrainableTokensLayer._check_overlapping_tokens = _check_overlapping_tokens
    _APPLIED = True
