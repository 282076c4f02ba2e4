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

import itertools
import math
from collections.abc import Callable
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
    # Each candidate's z-search completion before fine-tuning, in this result's order (set by
    # GeneratorFineTuner; None: ``completions`` are the search's): its prediction of pixels the
    # search did not see and fine-tuning did (a held-out score, see engine.Damaged.held_out).
    searched: torch.Tensor | None = None

    @property
    def search_completions(self) -> torch.Tensor:
        """What the z-search alone drew for each candidate (fine-tuned or not), in order."""
        return self.completions if self.searched is None else self.searched


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
        return learning_rate(self.params, step)

    def losses(
        self,
        images: torch.Tensor,
        logits: torch.Tensor,
        target: torch.Tensor,
        weights: torch.Tensor,
        perceptual_weight: float | torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, contextual, perceptual), each (B,).

        contextual = ||W * (G(z) - y)||_1 per candidate; perceptual = log(1 - D(G(z))) written as
        -softplus(logit), since log(1 - sigmoid(l)) = -softplus(l) stays finite where D is sure.
        ``perceptual_weight`` (lambda; one per row in a batch of several problems) defaults to
        the optimizer's.
        """
        lam = self.params.perceptual_weight if perceptual_weight is None else perceptual_weight
        contextual = (weights * (images - target)).abs().flatten(1).sum(1)
        perceptual = -F.softplus(logits.flatten())
        return contextual + lam * perceptual, contextual, perceptual

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
        problem = ZProblem(target, missing, valid)
        return self.optimize_batch(
            generator, discriminator, [problem], encoder, nz, progress, stage
        )[0]

    def optimize_batch(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        problems: list[ZProblem],
        encoder: nn.Module | None = None,
        nz: int | None = None,
        progress: Progress | None = None,
        stage: str = "inpaint",
        on_result: Callable[[int, ZOptResult], None] | None = None,
    ) -> list[ZOptResult]:
        """Search z for several damaged patches at once, one :class:`ZOptResult` each.

        The windows of one scan, or the jobs of several requests for the same generator, are
        searched in one batch: every step runs G and D once on the candidates of all problems,
        which keeps a GPU busy where one problem's few candidates leave it idle, and costs less per
        candidate on a CPU too. Each problem keeps its own latents, Adam moments, learning-rate
        schedule, pruning and early stopping, and batch norm runs on its running statistics, so
        every result equals :meth:`optimize` on that problem alone (to float rounding: a batched
        matrix product may sum in another order). ``on_result(index, result)`` is called as each
        problem's search ends, before the others' end.
        """
        if not problems:
            return []
        nz = nz if nz is not None else _latent_size(generator)
        radius = prior_radius(nz)
        with frozen([generator, discriminator, encoder]):
            guesses = _encoder_latents(encoder, problems)
            searches = [
                _Search(problem, problem.params or self.params, nz, radius, guess)
                for problem, guess in zip(problems, guesses, strict=True)
            ]
            total_steps = max(s.params.steps for s in searches)
            results: list[ZOptResult | None] = [None] * len(searches)

            def finish(ended: list[_Search]) -> None:
                for search in ended:
                    index = searches.index(search)
                    results[index] = self._finish(generator, discriminator, search)
                    if on_result is not None:
                        on_result(index, results[index])

            active = [s for s in searches if s.params.steps > 0]
            finish([s for s in searches if s.params.steps <= 0])
            batch = _Batch([])
            step = 0
            while active:
                for search in active:
                    search.before_step(step)  # may prune rows
                if not batch.holds(active):
                    batch = _Batch(active)
                images = generator(batch.latents())
                total, ctx, perc = self.losses(
                    images, discriminator(images), batch.target, batch.weights, batch.lam
                )
                with torch.no_grad():
                    for search, rows in zip(active, batch.slices, strict=True):
                        search.keep_best(total[rows], ctx[rows], perc[rows])
                total.sum().backward()  # candidates are independent: each gets its own gradient
                for search in active:
                    search.after_step(step)
                step += 1
                report(progress, stage, step, total_steps)
                going = _still_searching(active, step)
                finish([s for s in active if s not in going])  # answered as soon as it ends
                active = going
        return [r for r in results if r is not None]

    def _finish(
        self, generator: nn.Module, discriminator: nn.Module, search: _Search
    ) -> ZOptResult:
        """Score the last step's latents (moved, not yet scored), rank, draw the best in order.

        Done for each problem the moment its search ends, so a short search in a batch with a
        long one gets its answer (``on_result``) without waiting for the long one.
        """
        with torch.no_grad():
            images = generator(search.z)
            total, ctx, perc = self.losses(
                images,
                discriminator(images),
                search.target,
                search.weights,
                search.params.perceptual_weight,
            )
            search.keep_best(total, ctx, perc)
            ranked = search.ranked_latents()
            completions = generator(ranked)
        # one read-back of this search's loss curve (it stayed on the device while it ran)
        curve = torch.stack(search.curve).tolist() if search.curve else []
        return search.result(ranked, completions, curve)


@dataclass(frozen=True)
class ZProblem:
    """One damaged patch to search z for: a window of one scan, or one request of a batch.

    Tensors as :meth:`ZOptimizer.optimize` takes them (1 x C x S x S target in [-1, 1], 1 x 1 x
    S x S ``missing`` and ``valid``), on the models' device. ``params`` (candidates, steps, seed,
    ...) defaults to the optimizer's. ``cancelled``, asked after every step, true when nobody
    waits for this problem any more (its job was stopped): its rows leave the batch, so a
    stopped job does not keep a shared batch running for itself.
    """

    target: torch.Tensor
    missing: torch.Tensor
    valid: torch.Tensor | None = None
    params: InpaintParams | None = None
    cancelled: Callable[[], bool] | None = field(default=None, compare=False)


def learning_rate(params: InpaintParams, step: int) -> float:
    """Adam's lr at ``step`` under ``params``' schedule (see :meth:`ZOptimizer.learning_rate`)."""
    if params.schedule == "constant" or params.steps <= 1:
        return params.lr
    return params.lr * 0.5 * (1.0 + math.cos(math.pi * step / params.steps))


class _Search:
    """One problem inside a batched search: its latents and Adam, the best so far, its curve.

    ``rows`` index the problem's original candidates that are still optimized (pruning drops
    the hopeless ones); the best loss and latent are kept for every original candidate.
    """

    def __init__(
        self,
        problem: ZProblem,
        params: InpaintParams,
        nz: int,
        radius: float,
        encoder_latent: torch.Tensor | None,
    ) -> None:
        self.params, self.radius = params, radius
        device = problem.target.device
        valid = torch.ones_like(problem.missing) if problem.valid is None else problem.valid
        self.target = problem.target
        self.weights = context_weights(problem.missing, params.window, valid)  # 1 x 1 x S x S
        rng = torch.Generator(device="cpu").manual_seed(params.seed)
        z0, self.from_encoder = ZOptimizer(params).initial_latents(
            params.candidates, nz, rng, encoder_latent
        )
        self.z = project_to_prior(z0, radius).to(device).requires_grad_(True)
        self.optimizer = torch.optim.Adam([self.z], lr=params.lr, betas=(0.9, 0.999))
        count = params.candidates
        self.best = torch.full((count,), math.inf, device=device)
        self.best_ctx = torch.zeros(count, device=device)
        self.best_perc = torch.zeros(count, device=device)
        self.best_z = self.z.detach().clone()
        self.rows = torch.arange(count, device=device)
        # The best loss after each step stays on the device: reading it back every step would
        # make the host wait for the GPU once per step (the loop is launch-bound there). It is
        # read back every EARLY_STOP_EVERY steps when early stopping is on, and once at the end.
        self.curve: list[torch.Tensor] = []
        self.stopper = _EarlyStop(params.patience, params.tolerance)
        self.steps_run = 0
        self.stopped = False
        self.cancelled = problem.cancelled or _never

    def before_step(self, step: int) -> None:
        p = self.params
        if step == p.prune_after and 0 < p.keep < len(self.rows):
            keep = torch.argsort(self.best[self.rows].cpu(), stable=True)[: p.keep]
            self.rows = self.rows[keep.to(self.rows.device)]
            self.z, self.optimizer = _narrow(self.z, self.optimizer, keep.to(self.z.device))
        self.optimizer.param_groups[0]["lr"] = learning_rate(p, step)
        self.optimizer.zero_grad(set_to_none=True)

    def keep_best(self, total: torch.Tensor, ctx: torch.Tensor, perc: torch.Tensor) -> None:
        rows, zs = self.rows, self.z.detach()
        total, ctx, perc = total.detach(), ctx.detach(), perc.detach()
        better = total < self.best[rows]
        self.best[rows] = torch.where(better, total, self.best[rows])
        self.best_ctx[rows] = torch.where(better, ctx, self.best_ctx[rows])
        self.best_perc[rows] = torch.where(better, perc, self.best_perc[rows])
        self.best_z[rows] = torch.where(better[:, None], zs, self.best_z[rows])

    def after_step(self, step: int) -> None:
        self.optimizer.step()
        with torch.no_grad():
            project_to_prior(self.z, self.radius)
        self.steps_run = step + 1
        self.curve.append(self.best.min())

    def wants_check(self) -> bool:
        return bool(self.params.patience) and self.steps_run % EARLY_STOP_EVERY == 0

    def should_stop(self, recent: list[float]) -> bool:
        return self.stopper.should_stop(recent, first_step=self.steps_run - len(recent))

    def ranked_latents(self) -> torch.Tensor:
        self.order = torch.argsort(self.best.cpu(), stable=True)
        return self.best_z[self.order.to(self.best_z.device)]

    def result(
        self, latents: torch.Tensor, completions: torch.Tensor, curve: list[float]
    ) -> ZOptResult:
        if curve:
            curve[-1] = min(curve[-1], float(self.best.min()))
        order = self.order.to(self.best.device)
        return ZOptResult(
            completions=completions.detach(),
            latents=latents.detach(),
            total=self.best[order].detach().cpu(),
            contextual=self.best_ctx[order].detach().cpu(),
            perceptual=self.best_perc[order].detach().cpu(),
            from_encoder=self.from_encoder[self.order],
            steps=self.steps_run,
            curve=curve,
        )


class _Batch:
    """The searches' current rows side by side: where each one's rows are, and per-row inputs.

    Built again only when the set of searches or their row counts change (pruning, a search
    that ends), so a step does not copy targets and weights it already has.
    """

    def __init__(self, searches: list[_Search]) -> None:
        self.searches = searches
        self.counts = [len(s.rows) for s in searches]
        self.key = [(id(s), n) for s, n in self._pairs()]
        starts = [0]
        for n in self.counts:
            starts.append(starts[-1] + n)
        self.slices = [slice(a, b) for a, b in itertools.pairwise(starts)]
        if len(searches) == 1:  # one problem: broadcast, exactly the tensors of a lone search
            only = searches[0]
            self.target, self.weights = only.target, only.weights
            self.lam: float | torch.Tensor = only.params.perceptual_weight
        elif searches:
            self.target = _repeat([s.target for s in searches], self.counts)
            self.weights = _repeat([s.weights for s in searches], self.counts)
            lam = [torch.full((n,), s.params.perceptual_weight) for s, n in self._pairs()]
            self.lam = torch.cat(lam).to(self.target.device)

    def _pairs(self) -> list[tuple[_Search, int]]:
        return list(zip(self.searches, self.counts, strict=True))

    def holds(self, searches: list[_Search]) -> bool:
        return self.key == [(id(s), len(s.rows)) for s in searches]

    def latents(self) -> torch.Tensor:
        """The optimized rows' latents, in the order of :attr:`slices`."""
        if len(self.searches) == 1:
            return self.searches[0].z
        return torch.cat([s.z for s in self.searches])


def _repeat(tensors: list[torch.Tensor], counts: list[int]) -> torch.Tensor:
    return torch.cat([t.expand(n, *t.shape[1:]) for t, n in zip(tensors, counts, strict=True)])


def _encoder_latents(
    encoder: nn.Module | None, problems: list[ZProblem]
) -> list[torch.Tensor | None]:
    """The encoder's guess of z for every problem (one batch), or None each without an encoder."""
    if encoder is None:
        return [None] * len(problems)
    known = []
    for problem in problems:
        valid = torch.ones_like(problem.missing) if problem.valid is None else problem.valid
        known.append((1.0 - problem.missing) * valid)
    targets = torch.cat([problem.target * k for problem, k in zip(problems, known, strict=True)])
    with torch.no_grad():
        guesses = encoder(targets, torch.cat(known))
    return [guess.reshape(1, -1) for guess in guesses.reshape(len(problems), -1)]


def _still_searching(active: list[_Search], step: int) -> list[_Search]:
    """The searches that go on after ``step`` steps: within their steps, not early-stopped.

    Early stopping reads the recent curves of every search due for a check in one read-back.
    """
    due = [s for s in active if s.steps_run < s.params.steps and s.wants_check()]
    if due:
        recent = torch.stack([torch.stack(s.curve[-EARLY_STOP_EVERY:]) for s in due]).tolist()
        for search, values in zip(due, recent, strict=True):
            search.stopped = search.should_stop(values)
    return [
        s for s in active if s.steps_run < s.params.steps and not s.stopped and not s.cancelled()
    ]


def _never() -> bool:
    return False


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
