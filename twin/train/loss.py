"""The training loss: next-token cross-entropy on the reply tokens only, the LM head only where it counts.

One module, shared by SFT (:mod:`twin.train.loop`) and the preference stage (:mod:`twin.train.prefs`,
which asks for each row's own sum), and set up by Fabric as the thing the loop calls.
"""

from __future__ import annotations

from typing import Any


def make_loss_module(peft_model: Any) -> Any:
    """A ``torch.nn.Module`` around ``peft_model``: ``module(**batch)`` is the summed reply-token loss."""
    import torch
    import torch.nn.functional as F

    lm = peft_model.get_base_model()
    body = getattr(lm, "base_model", None)
    head = lm.get_output_embeddings()
    # Models that post-process logits (soft-capping, scaling) go through their full forward.
    fast = (
        body is not None
        and body is not lm
        and head is not None
        and not getattr(lm.config, "final_logit_softcapping", None)
        and getattr(lm.config, "logit_scale", None) in (None, 1, 1.0)
    )

    class ResponseLoss(torch.nn.Module):
        """Summed next-token cross-entropy over positions whose label is not -100.

        Only those positions (the reply and its EOS) go through the LM head: on chat data most
        tokens are prompt, so this skips most of the head's matmul and softmax.
        """

        def __init__(self) -> None:
            super().__init__()
            self.peft_model = peft_model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            labels: torch.Tensor,
            per_row: bool = False,
        ) -> Any:
            """The summed loss, or with ``per_row`` each row's own sum (minus its log-probability)."""
            targets = labels[:, 1:]
            keep = targets != -100
            if fast:
                hidden = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)[0]
                logits = head(hidden[:, :-1][keep])
            else:
                out = self.peft_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
                logits = out.logits[:, :-1][keep]
            if not per_row:
                return F.cross_entropy(logits.float(), targets[keep], reduction="sum")
            losses = F.cross_entropy(logits.float(), targets[keep], reduction="none")
            rows = keep.nonzero()[:, 0]  # boolean indexing is row-major: rows line up with `losses`
            return losses.new_zeros(len(input_ids)).index_add(0, rows, losses)

    return ResponseLoss()
