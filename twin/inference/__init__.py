"""Inference: replies from a loaded base + adapters (one at a time, and the batch scheduler with
per-row LoRA). Loading lives in ``twin.model``; serving, eval and the demo call this package."""
