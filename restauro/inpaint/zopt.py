"""Semantic inpainting by z-optimization (Yeh et al. 2017, "Semantic image inpainting with deep
generative models").

The generator knows what paintings of a cluster look like; the damaged patch only tells us its
visible pixels. We search the latent space for z whose image G(z) agrees with the visible pixels
near the hole (contextual loss) and still looks real to the discriminator (perceptual loss), then
take G(z) inside the hole. Many candidates are optimized together in one batch and ranked.

:class:`ZOptimizer` holds the algorithm and no weights (like a diffusers scheduler): the networks
are passed to :meth:`ZOptimizer.optimize`, so one optimizer serves every cluster's models.

Prior support. The DCGANs here are trained with z ~ N(0, I). Yeh et al. clip z to [-1, 1] because
their prior is uniform; clipping a Gaussian latent coordinate-wise would move it off the shell
where almost all the prior's mass lies (|z| ~ sqrt(nz)) and into a region the generator never saw.
So after each step every candidate is projected onto the ball of radius sqrt(nz) + 3 / sqrt(2),
which holds all but ~0.1 % of the prior's mass (|z| has std ~ 1/sqrt(2) around sqrt(nz)): z may
move freely inside the typical set but never escapes to norms G was never trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from restauro.inpaint.context import context_weights
from restauro.inpaint.params import InpaintParams
from restauro.nets import frozen
from restauro.progress import Progress, report


@dataclass
class ZOptResult:
    """Candidates ranked by final total loss, ascending (index 0 = best)."""

    completions: torch.Tensor  # B x C x S x S, G(z) in [-1, 1]
    latents: torch.Tensor  # B x nz
    total: torch.Tensor  # (B,) contextual + lambda * perceptual
    contextual: torch.Tensor  # (B,)
    perceptual: torch.Tensor  # (B,) log(1 - D(G(z))) (before the lambda)
    from_encoder: torch.Tensor  # (B,) bool: started from the encoder's latent
    steps: int  # Adam steps actually run (early stopping may end before params.steps)
    curve: list[float] = field(default_factory=list)  # best total loss after each step
    finetuned: torch.Tensor | None = None  # (B,) bool, set by GeneratorFineTuner; None = none
    finetune_steps: int = 0  # Adam steps on each fine-tuned candidate's copy of G


def prior_radius(nz: int) -> float:
    """Radius of the ball that keeps z in the typical set of N(0, I_nz)."""
    return math.sqrt(nz) + 3.0 / math.sqrt(2.0)


def project_to_prior(z: torch.Tensor, radius: float) -> torch.Tensor:
    """Shrink rows whose norm exceeds ``radius`` back onto the ball (in place)."""
    norms = z.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return z.mul_(torch.clamp(radius / norms, max=1.0))


class ZOptimizer:
    """Adam on the latents of B candidates at once, ranked by the loss of Yeh et al."""

    def __init__(self, params: InpaintParams) -> None:
        self.params = params

    def learning_rate(self, step: int) -> float:
        """Adam's lr at ``step``: constant, or cosine-annealed from ``lr`` to 0 over ``steps``.

        A large lr crosses the latent space fast but then rattles around the minimum; annealing
        lets the same run settle into it, so a short search ends as low as a long slow one.
        """
        p = self.params
        if p.schedule == "constant" or p.steps <= 1:
            return p.lr
        return p.lr * 0.5 * (1.0 + math.cos(math.pi * step / p.steps))

    def losses(
        self,
        images: torch.Tensor,
        logits: torch.Tensor,
        target: torch.Tensor,
        weights: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, contextual, perceptual), each (B,).

        contextual = ||W * (G(z) - y)||_1 per candidate; perceptual = log(1 - D(G(z))) written as
        -softplus(logit), since log(1 - sigmoid(l)) = -softplus(l) stays finite where D is sure.
        """
        contextual = (weights * (images - target)).abs().flatten(1).sum(1)
        perceptual = -F.softplus(logits)
        return contextual + self.params.perceptual_weight * perceptual, contextual, perceptual

    def initial_latents(
        self,
        count: int,
        nz: int,
        generator: torch.Generator,
        encoder_latent: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents drawn from the prior, some replaced by the encoder's guess (plus small noise).

        The first encoder candidate keeps the guess exactly; the others get noise so the batch
        explores around it instead of optimizing the same point several times.
        """
        z = torch.randn(count, nz, generator=generator)
        from_encoder = torch.zeros(count, dtype=torch.bool)
        if encoder_latent is not None and self.params.encoder_fraction > 0:
            n_enc = max(1, round(count * self.params.encoder_fraction))
            noise = torch.randn(n_enc, nz, generator=generator) * self.params.encoder_noise
            noise[0] = 0.0
            z[:n_enc] = encoder_latent.detach().cpu().float().reshape(1, nz) + noise
            from_encoder[:n_enc] = True
        return z, from_encoder

    def optimize(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        target: torch.Tensor,
        missing: torch.Tensor,
        valid: torch.Tensor | None = None,
        encoder: nn.Module | None = None,
        nz: int | None = None,
        progress: Progress | None = None,
        stage: str = "inpaint",
    ) -> ZOptResult:
        """Search z for one damaged patch.

        ``target`` is the patch (1 x C x S x S in [-1, 1]) on the device the models live on;
        ``missing`` (1 x 1 x S x S) is 1 in the hole; ``valid`` (same shape) is 0 on padding that
        belongs to neither the hole nor the painting (a window overhanging the image).
        """
        p = self.params
        device = target.device
        valid = torch.ones_like(missing) if valid is None else valid
        weights = context_weights(missing, p.window, valid)  # 1 x 1 x S x S
        known = (1.0 - missing) * valid
        nz = nz if nz is not None else _latent_size(generator)
        rng = torch.Generator(device="cpu").manual_seed(p.seed)

        with frozen([generator, discriminator, encoder]):
            encoder_latent = None
            if encoder is not None:
                with torch.no_grad():
                    encoder_latent = encoder(target * known, known).reshape(1, -1)
            z0, from_encoder = self.initial_latents(p.candidates, nz, rng, encoder_latent)
            radius = prior_radius(nz)
            z = project_to_prior(z0, radius).to(device).requires_grad_(True)
            optimizer = torch.optim.Adam([z], lr=p.lr, betas=(0.9, 0.999))

            best = torch.full((p.candidates,), math.inf, device=device)
            best_ctx = torch.zeros(p.candidates, device=device)
            best_perc = torch.zeros(p.candidates, device=device)
            best_z = z.detach().clone()
            rows = torch.arange(p.candidates, device=device)  # candidates still optimized

            def keep_best(zs: torch.Tensor, total, ctx, perc) -> None:
                better = total < best[rows]
                best[rows] = torch.where(better, total, best[rows])
                best_ctx[rows] = torch.where(better, ctx, best_ctx[rows])
                best_perc[rows] = torch.where(better, perc, best_perc[rows])
                best_z[rows] = torch.where(better[:, None], zs, best_z[rows])

            # The best loss after each step stays on the device: reading it back every step would
            # make the host wait for the GPU once per step (the loop is launch-bound there). It is
            # read back every EARLY_STOP_EVERY steps when early stopping is on, and once at the end.
            curve_t: list[torch.Tensor] = []
            stopper = _EarlyStop(p.patience, p.tolerance)
            steps_run = 0
            for step in range(p.steps):
                if step == p.prune_after and 0 < p.keep < len(rows):
                    rows = torch.argsort(best[rows].cpu(), stable=True)[: p.keep].to(device)
                    z, optimizer = _narrow(z, optimizer, rows)
                optimizer.param_groups[0]["lr"] = self.learning_rate(step)
                optimizer.zero_grad(set_to_none=True)
                images = generator(z)
                total, ctx, perc = self.losses(images, discriminator(images), target, weights)
                with torch.no_grad():
                    keep_best(z.detach(), total.detach(), ctx.detach(), perc.detach())
                total.sum().backward()  # candidates are independent: each gets its own gradient
                optimizer.step()
                with torch.no_grad():
                    project_to_prior(z, radius)
                steps_run = step + 1
                curve_t.append(best.min())
                report(progress, stage, steps_run, p.steps)
                if p.patience and steps_run % EARLY_STOP_EVERY == 0:
                    recent = torch.stack(curve_t[-EARLY_STOP_EVERY:]).tolist()
                    if stopper.should_stop(recent, first_step=steps_run - len(recent)):
                        break

            with torch.no_grad():
                images = generator(z)
                total, ctx, perc = self.losses(images, discriminator(images), target, weights)
                keep_best(z.detach(), total, ctx, perc)
                order = torch.argsort(best.cpu(), stable=True).to(device)
                latents = best_z[order]
                completions = generator(latents)
        curve = torch.stack(curve_t).tolist() if curve_t else []
        if curve:
            curve[-1] = min(curve[-1], float(best.min()))
        return ZOptResult(
            completions=completions.detach(),
            latents=latents.detach(),
            total=best[order].detach().cpu(),
            contextual=best_ctx[order].detach().cpu(),
            perceptual=best_perc[order].detach().cpu(),
            from_encoder=from_encoder[order.cpu()],
            steps=steps_run,
            curve=curve,
        )


EARLY_STOP_EVERY = 10  # steps between read-backs of the loss curve when early stopping is on


class _EarlyStop:
    """Stop when the best loss has not improved by ``tolerance`` (relative) for ``patience`` steps.

    Fed the curve in chunks (the read-backs), it applies the same rule step by step, so it stops
    at the first chunk boundary at or after the step where a per-step check would have stopped.
    """

    def __init__(self, patience: int, tolerance: float) -> None:
        self.patience, self.tolerance = patience, tolerance
        self.reference, self.last_gain = math.inf, 0

    def should_stop(self, values: list[float], first_step: int) -> bool:
        for offset, current in enumerate(values):
            step = first_step + offset
            # The first value always counts as progress: inf - tolerance * inf is nan, and a
            # comparison with nan is false (before 2026-12-01 that made every run stop at step
            # `patience`, whatever its curve did).
            if not math.isfinite(self.reference) or current < self.reference - self.tolerance * max(
                abs(self.reference), 1e-8
            ):
                self.reference, self.last_gain = current, step
            elif step - self.last_gain >= self.patience:
                return True
        return False


def _narrow(
    z: torch.Tensor, optimizer: torch.optim.Adam, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.optim.Adam]:
    """Keep optimizing only ``rows`` of ``z``, with their Adam moments carried over.

    The step costs about as much per candidate as the whole batch on a CPU, so once the ranking
    is clear, dropping the hopeless candidates buys steps for the promising ones.
    """
    narrowed = z.detach()[rows].clone().requires_grad_(True)
    group = optimizer.param_groups[0]
    out = torch.optim.Adam([narrowed], lr=group["lr"], betas=group["betas"])
    state = optimizer.state.get(z)
    if state:
        out.state[narrowed] = {
            "step": state["step"].clone(),
            "exp_avg": state["exp_avg"][rows].clone(),
            "exp_avg_sq": state["exp_avg_sq"][rows].clone(),
        }
    return narrowed, out


def _latent_size(generator: nn.Module) -> int:
    config = getattr(generator, "config", None)
    if config is not None and hasattr(config, "nz"):
        return int(config.nz)
    raise ValueError("cannot tell the latent size of this generator: pass nz")
