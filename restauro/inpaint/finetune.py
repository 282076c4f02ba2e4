"""Generator fine-tuning at restoration time (Deep Generative Prior, Pan et al. 2020).

z-optimization can only pick the closest painting the generator knows how to draw; a cluster GAN
trained on a few hundred paintings knows few, so the best G(z) still misses the painting's own
colours and shapes around the hole. DGP's remedy: after the z-search, let the *weights* of a copy
of G move a little too (Adam, ~100 steps, a small learning rate) so that G(z) fits the known
pixels of this one painting, then blend the completion into the hole as before. The prior the GAN
learned keeps the hole plausible; the fine-tuning makes it this painting's.

:class:`GeneratorFineTuner` holds the algorithm and no weights, like :class:`ZOptimizer`: the
networks come in as arguments and are never modified. The fine-tuned candidates share one deep
copy of G per group of holes, optimised in one batch; the shared G (a worker's cached model,
shared with every other request) and D are only read, in eval mode. Batch norm stays in eval mode
on the copy too (as in DGP): the running statistics of training are what G's layers expect, and
batch statistics of a few candidates of one painting would be meaningless.

The objective is the z-search's (Yeh et al.'s weighted contextual loss + lambda x perceptual),
plus ``finetune_known_weight`` x the L1 over *all* known pixels: W weighs only a thin ring around
the hole, and fitting G's weights to a ring alone leaves the rest of the painting free to drift.
The best state of each candidate along the way is kept, so its objective never ends higher than
where the z-search left it. Everything is deterministic: no noise is drawn.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import torch
from torch import nn

from restauro.inpaint.context import context_weights
from restauro.inpaint.params import InpaintParams
from restauro.inpaint.zopt import ZOptimizer, ZOptResult, prior_radius, project_to_prior
from restauro.nets import frozen
from restauro.progress import Progress, report


class GeneratorFineTuner:
    """Adam on (a copy of G's weights, z) for the best candidates of a :class:`ZOptResult`."""

    def __init__(self, params: InpaintParams) -> None:
        self.params = params
        self._losses = ZOptimizer(params).losses  # the z-search's objective, one definition

    def count(self, candidates: int) -> int:
        """How many of ``candidates`` ranked completions get fine-tuned."""
        p = self.params
        return min(p.finetune_candidates, candidates) if p.finetune_steps > 0 else 0

    def objective(
        self,
        images: torch.Tensor,
        logits: torch.Tensor,
        target: torch.Tensor,
        weights: torch.Tensor,
        known: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(objective, total, contextual, perceptual), each (B,).

        ``objective`` is what fine-tuning minimises; ``total`` is the z-search's loss of the same
        images, which is what a candidate reports and is ranked by.
        """
        p = self.params
        total, contextual, perceptual = self._losses(images, logits, target, weights)
        fit = (known * (images - target)).abs().flatten(1).sum(1)
        objective = (total if p.finetune_perceptual else contextual) + p.finetune_known_weight * fit
        return objective, total, contextual, perceptual

    def finetune(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        target: torch.Tensor,
        missing: torch.Tensor,
        searched: ZOptResult,
        valid: torch.Tensor | None = None,
        progress: Progress | None = None,
        stage: str = "finetune",
        fit_missing: torch.Tensor | None = None,
    ) -> ZOptResult:
        """The search's result with its best ``finetune_candidates`` fine-tuned.

        ``target``, ``missing`` and ``valid`` are those given to :meth:`ZOptimizer.optimize`.
        ``fit_missing`` (default ``missing``) is what fine-tuning does not see: pixels held out
        from the search to score its prediction of them may be known here, so that the
        delivered completion fits all of the painting that is there (``target`` must then hold
        their values). The fine-tuned candidates come first, ranked by their total loss; the
        others follow unchanged, in the search's order; ``searched`` keeps what the search drew.
        """
        p = self.params
        k = self.count(len(searched.latents))
        if k == 0:
            return searched
        missing = missing if fit_missing is None else fit_missing
        valid = torch.ones_like(missing) if valid is None else valid
        weights = context_weights(missing, p.window, valid)
        known = (1.0 - missing) * valid
        images = searched.completions.clone()
        latents = searched.latents.clone()
        total, contextual = searched.total.clone(), searched.contextual.clone()
        perceptual = searched.perceptual.clone()
        with frozen([generator, discriminator]):
            best = self._tune(
                generator, discriminator, latents[:k], target, weights, known, progress, stage
            )
        images[:k], latents[:k] = best["image"], best["z"]
        total[:k], contextual[:k] = best["total"], best["contextual"]
        perceptual[:k] = best["perceptual"]
        order = torch.cat([torch.argsort(total[:k], stable=True), torch.arange(k, len(total))])
        return replace(
            searched,
            completions=images[order.to(images.device)],
            latents=latents[order.to(latents.device)],
            total=total[order],
            contextual=contextual[order],
            perceptual=perceptual[order],
            from_encoder=searched.from_encoder[order],
            finetuned=(torch.arange(len(order)) < k)[order],
            finetune_steps=p.finetune_steps,
            searched=searched.search_completions[order.to(images.device)],
        )

    def _tune(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        z0: torch.Tensor,
        target: torch.Tensor,
        weights: torch.Tensor,
        known: torch.Tensor,
        progress: Progress | None,
        stage: str,
    ) -> dict[str, torch.Tensor]:
        """Fine-tune one copy of G with the k latents ``z0`` in one batch; each row's best image.

        One copy for all k candidates, not one each: they fit the same known pixels, so their
        gradients on G agree, and one batch of k costs far less than k batches of one on a CPU.
        Batch norm runs on running statistics, so the rows do not interact through the batch.
        """
        p = self.params
        tuned = copy.deepcopy(generator)  # the shared generator is only read, never written
        tuned.eval()  # batch norm on its running statistics, as in DGP
        tuned.requires_grad_(True)
        z = z0.detach().clone().to(target.device).requires_grad_(True)
        optimizer = torch.optim.Adam([*tuned.parameters(), z], lr=p.finetune_lr, betas=(0.9, 0.999))
        radius = prior_radius(z.shape[1])
        k = len(z)
        best = {
            "objective": torch.full((k,), math.inf),
            "image": torch.zeros(k, *target.shape[1:], device=target.device),
            "z": z.detach().clone(),
            "total": torch.zeros(k),
            "contextual": torch.zeros(k),
            "perceptual": torch.zeros(k),
        }
        for step in range(p.finetune_steps + 1):  # the last pass only scores the final weights
            optimizer.zero_grad(set_to_none=True)
            image = tuned(z)
            objective, total, ctx, perc = self.objective(
                image, discriminator(image), target, weights, known
            )
            with torch.no_grad():
                better = objective.detach().cpu() < best["objective"]
                rows = better.nonzero().flatten()
                if len(rows):
                    on_device = rows.to(image.device)
                    best["objective"][rows] = objective.detach().cpu()[rows]
                    best["image"][on_device] = image.detach()[on_device]
                    best["z"][on_device] = z.detach()[on_device]
                    for key, value in (("total", total), ("contextual", ctx), ("perceptual", perc)):
                        best[key][rows] = value.detach().cpu()[rows]
            if step == p.finetune_steps:
                break
            objective.sum().backward()
            optimizer.step()
            with torch.no_grad():
                project_to_prior(z, radius)
            report(progress, stage, step + 1, p.finetune_steps)
        return best
