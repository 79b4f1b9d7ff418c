"""Latent batch nodes: pick from, repeat and join batches, and choose how a batch's noise seeds are numbered.

A latent's optional "batch_index" lists, per item, which noise of the seed it gets (KSampler draws the
noise for index i as the i-th of the seed's batch); these nodes keep it consistent as items move.
Batches that grow (RepeatLatentBatch, LatentBatch) are checked against the latent size cap of
nodes.latent before anything is allocated; their sizes come from links, so only run time knows them.
"""

from __future__ import annotations

import torch

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import LATENT, Choice, Int, Link
from nodes.latent import check_latent_size
from nodes.latent_ops import repeat_to_batch
from nodes.resample import resize


def default_batch_index(latent: dict) -> list[int]:
    """The latent's batch_index, or 0..B-1 (what sampling assumes when there is none)."""
    return list(latent.get("batch_index", range(latent["samples"].shape[0])))


@node("LatentFromBatch", display_name="Latent From Batch", category="latent/batch", outputs=[Out(LATENT)])
class LatentFromBatch:
    """Take `length` items starting at `batch_index` (clamped to the batch), with their masks and noise indices."""

    samples = Link(LATENT)
    batch_index = Int(0, min=0, max=63)
    length = Int(1, min=1, max=64)

    def run(self, ctx: RunContext, samples: dict, batch_index: int, length: int) -> tuple:
        latent = samples["samples"]
        start = min(latent.shape[0] - 1, batch_index)
        stop = start + min(latent.shape[0] - start, length)
        out = {**samples, "samples": latent[start:stop].clone()}
        if "noise_mask" in samples:
            masks = samples["noise_mask"]
            # One mask applies to every item; a shorter batch of masks is cycled over the latents.
            out["noise_mask"] = masks.clone() if masks.shape[0] == 1 else \
                repeat_to_batch(masks, latent.shape[0])[start:stop].clone()
        out["batch_index"] = default_batch_index(samples)[start:stop]
        return (out,)


@node("RepeatLatentBatch", display_name="Repeat Latent Batch", category="latent/batch", outputs=[Out(LATENT)])
class RepeatLatentBatch:
    """The whole batch `amount` times over; repeated items get fresh noise indices past the original ones."""

    samples = Link(LATENT)
    amount = Int(1, min=1, max=64)

    def run(self, ctx: RunContext, samples: dict, amount: int) -> tuple:
        latent = samples["samples"]
        check_latent_size(ctx, latent.shape[3] * 8, latent.shape[2] * 8, latent.shape[0] * amount, "amount")
        out = {**samples, "samples": latent.repeat(amount, 1, 1, 1)}
        masks = samples.get("noise_mask")
        if masks is not None and masks.shape[0] > 1:
            out["noise_mask"] = repeat_to_batch(masks, latent.shape[0]).repeat(amount, 1, 1, 1)
        if "batch_index" in samples:
            indices = list(samples["batch_index"])
            span = max(indices) - min(indices) + 1
            out["batch_index"] = indices + [i + copy * span for copy in range(1, amount) for i in indices]
        return (out,)


@node("LatentBatch", category="latent/batch", outputs=[Out(LATENT)])
class LatentBatch:
    """samples2's items appended to samples1's (resized to samples1's size, bilinear, center crop)."""

    samples1 = Link(LATENT)
    samples2 = Link(LATENT)

    def run(self, ctx: RunContext, samples1: dict, samples2: dict) -> tuple:
        first, second = samples1["samples"], samples2["samples"]
        check_latent_size(ctx, first.shape[3] * 8, first.shape[2] * 8, first.shape[0] + second.shape[0],
                          "the batches joined (samples1, samples2)")
        if second.shape[1:] != first.shape[1:]:
            second = resize(second, first.shape[3], first.shape[2], "bilinear", "center")
        return ({**samples1, "samples": torch.cat((first, second.to(first.dtype)), dim=0),
                 "batch_index": default_batch_index(samples1) + default_batch_index(samples2)},)


@node("LatentBatchSeedBehavior", category="latent/advanced", outputs=[Out(LATENT)])
class LatentBatchSeedBehavior:
    """"fixed": every item gets the first item's noise; "random": each item its own (batch_index dropped)."""

    samples = Link(LATENT)
    seed_behavior = Choice(("random", "fixed"), default="fixed")

    def run(self, ctx: RunContext, samples: dict, seed_behavior: str) -> tuple:
        out = dict(samples)
        if seed_behavior == "random":
            out.pop("batch_index", None)
        else:
            first = samples.get("batch_index", [0])[0]
            out["batch_index"] = [first] * samples["samples"].shape[0]
        return (out,)
