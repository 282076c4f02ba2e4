"""Parameters of one restoration, checked once so every layer below can trust them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from restauro.errors import InvalidParameter

SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class InpaintParams:
    """Knobs of the z-optimization (Yeh et al. 2017) and of the full-resolution engine.

    The defaults reach the loss of Yeh et al.'s 1,500 steps at lr 0.01 in 200: Adam at lr 0.1
    gets within 1% of it after a median of ~55 steps (at most ~150) on held-out paintings, and
    after 25 steps only the 2 best of the 8 candidates keep being optimized, which makes the
    remaining steps ~3x cheaper on a CPU. Early stopping is off: the plateau rule stopped
    before the reference's loss on 5 of 8 paintings (docs/bench-inpainting.md).
    """

    candidates: int = 8  # B completions optimized together in one batch, returned ranked
    steps: int = 200  # upper bound of Adam steps on z
    lr: float = 0.1  # Adam learning rate on z
    perceptual_weight: float = 0.003  # lambda of lambda * log(1 - D(G(z)))
    window: int = 7  # side of the context-weight window (odd), in model pixels
    seed: int = 0  # seeds the initial latents: same seed, same result
    patience: int = 0  # stop when the best loss has not improved for this many steps (0 = never)
    tolerance: float = 1e-3  # relative improvement that counts as progress for early stopping
    schedule: str = "constant"  # Adam lr over the steps: "constant" or "cosine" (to 0 at `steps`)
    keep: int = 2  # after `prune_after` steps, optimize only the best `keep` candidates (0 = all)
    prune_after: int = 25  # step at which the candidates beyond `keep` stop being optimized
    encoder_fraction: float = 0.5  # share of candidates started from the encoder (if any)
    encoder_noise: float = 0.1  # std of the noise added to encoder latents, for diversity
    context_factor: float = 2.0  # context window side = hole bounding box side x this factor
    max_hole_fraction: float = 0.6  # above this share of hole in its window, warn (still restore)
    blend: bool = True  # Poisson-blend completions into the hole (False: paste raw output)
    # Generator fine-tuning after the z-search (Deep Generative Prior, Pan et al. 2020):
    finetune_steps: int = 0  # Adam steps on a copy of G (and z) per fine-tuned candidate; 0 = off
    finetune_lr: float = 5e-5  # Adam lr on G's weights and z (DGP: ~2e-5 to 1e-4)
    finetune_candidates: int = 2  # fine-tune the best this many candidates (each its own copy)
    finetune_perceptual: bool = True  # keep lambda * log(1 - D(G(z))) in the fine-tuning loss
    finetune_known_weight: float = 1.0  # weight of the L1 over all known pixels (W: a ring only)
    # A method per kind of damage at full resolution (damage_analysis.py, fullres.py). Off here, so
    # InpaintParams() is the paper's engine (the GAN on every hole); restore() turns it on.
    damage_methods: bool = False  # thin damage: diffusion; losses: GAN + detail; baselines too
    thin_width: float = 9.0  # damage at most this wide (px, by distance transform) is thin
    thin_model_width: float = 2.0  # ... and at most this many model px at the whole scan's scale
    max_scale: float = 4.0  # at most this many scan px per model px, where the hole fits
    min_context_factor: float = 1.5  # a window capped by max_scale keeps this much context
    baselines: tuple[str, ...] = ("telea", "ns")  # diffusion methods: thin damage, loss baselines
    diffusion_radius: int = 5  # neighbourhood of a Telea / Navier-Stokes fill (px)
    detail: bool = True  # transfer the painting's high band into GAN completions of losses
    detail_sigma: float = 0.0  # band split (px at scan resolution); 0 = detail_band x scale
    detail_band: float = 0.5  # band split in model px: sigma = this x the window's scale
    detail_block: int = 16  # side of the quilted blocks of brushwork (px)
    detail_gain: float = 1.0  # amplitude of the copied brushwork (1 = the painting's own)
    structure_mix: float = 0.0  # weight of baselines[0]'s fill averaged into the GAN's, 0 = off
    score_ring: int = 4  # known ring (px) held out to score every candidate alike
    rank_by: str = "method"  # "method": the GAN's candidates first on losses; "score": by score
    thin_method: str = "mean"  # thin fill of GAN candidates: "mean" of baselines, "best", a name

    def __post_init__(self) -> None:
        checks = [
            (self.candidates >= 1, f"candidates must be >= 1, got {self.candidates}"),
            (self.steps >= 0, f"steps must be >= 0, got {self.steps}"),
            (_finite(self.lr) and self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (
                _finite(self.perceptual_weight) and self.perceptual_weight >= 0,
                f"perceptual_weight must be >= 0, got {self.perceptual_weight}",
            ),
            (
                self.window >= 1 and self.window % 2 == 1,
                f"window must be a positive odd number, got {self.window}",
            ),
            (self.patience >= 0, f"patience must be >= 0, got {self.patience}"),
            (
                _finite(self.tolerance) and self.tolerance >= 0,
                f"tolerance must be >= 0, got {self.tolerance}",
            ),
            (
                self.schedule in SCHEDULES,
                f"schedule must be one of {SCHEDULES}, got {self.schedule!r}",
            ),
            (self.keep >= 0, f"keep must be >= 0, got {self.keep}"),
            (self.prune_after >= 0, f"prune_after must be >= 0, got {self.prune_after}"),
            (
                0.0 <= self.encoder_fraction <= 1.0,
                f"encoder_fraction must be in [0, 1], got {self.encoder_fraction}",
            ),
            (
                _finite(self.encoder_noise) and self.encoder_noise >= 0,
                f"encoder_noise must be >= 0, got {self.encoder_noise}",
            ),
            (
                _finite(self.context_factor) and self.context_factor >= 1.0,
                f"context_factor must be >= 1, got {self.context_factor}",
            ),
            (
                0.0 < self.max_hole_fraction <= 1.0,
                f"max_hole_fraction must be in (0, 1], got {self.max_hole_fraction}",
            ),
            (
                isinstance(self.finetune_steps, int) and 0 <= self.finetune_steps <= 2000,
                f"finetune_steps must be in [0, 2000], got {self.finetune_steps}",
            ),
            (
                _finite(self.finetune_lr) and 0 < self.finetune_lr <= 1e-2,
                f"finetune_lr must be in (0, 0.01], got {self.finetune_lr}",
            ),
            (
                self.finetune_candidates >= 1,
                f"finetune_candidates must be >= 1, got {self.finetune_candidates}",
            ),
            (
                _finite(self.finetune_known_weight) and self.finetune_known_weight >= 0,
                f"finetune_known_weight must be >= 0, got {self.finetune_known_weight}",
            ),
            *_damage_checks(self),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidParameter(message)

    def to_dict(self) -> dict:
        return asdict(self)


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _damage_checks(p: InpaintParams) -> list[tuple[bool, str]]:
    """Bounds of the full-resolution fields (kept apart so the list above stays readable)."""
    from restauro.inpaint.diffusion import METHODS

    baselines = p.baselines if isinstance(p.baselines, tuple | list) else ()
    return [
        (
            _finite(p.thin_width) and 1.0 <= p.thin_width <= 256.0,
            f"thin_width must be in [1, 256] px, got {p.thin_width}",
        ),
        (
            _finite(p.thin_model_width) and 1.0 <= p.thin_model_width <= 64.0,
            f"thin_model_width must be in [1, 64] model px, got {p.thin_model_width}",
        ),
        (
            _finite(p.max_scale) and p.max_scale >= 1.0,
            f"max_scale must be >= 1, got {p.max_scale}",
        ),
        (
            _finite(p.min_context_factor) and 1.0 <= p.min_context_factor <= p.context_factor,
            f"min_context_factor must be in [1, context_factor], got {p.min_context_factor}",
        ),
        (
            len(baselines) >= 1 and all(b in METHODS for b in baselines),
            f"baselines must be a non-empty tuple of {METHODS}, got {p.baselines!r}",
        ),
        (
            isinstance(p.diffusion_radius, int) and 1 <= p.diffusion_radius <= 64,
            f"diffusion_radius must be in [1, 64], got {p.diffusion_radius}",
        ),
        (
            _finite(p.detail_sigma) and 0.0 <= p.detail_sigma <= 64.0,
            f"detail_sigma must be in [0, 64] (0 = auto), got {p.detail_sigma}",
        ),
        (
            _finite(p.structure_mix) and 0.0 <= p.structure_mix <= 1.0,
            f"structure_mix must be in [0, 1], got {p.structure_mix}",
        ),
        (
            _finite(p.detail_band) and 0.1 <= p.detail_band <= 4.0,
            f"detail_band must be in [0.1, 4], got {p.detail_band}",
        ),
        (
            isinstance(p.detail_block, int) and 4 <= p.detail_block <= 256,
            f"detail_block must be in [4, 256], got {p.detail_block}",
        ),
        (
            _finite(p.detail_gain) and 0.0 <= p.detail_gain <= 1.0,
            f"detail_gain must be in [0, 1], got {p.detail_gain}",
        ),
        (
            isinstance(p.score_ring, int) and 1 <= p.score_ring <= 64,
            f"score_ring must be in [1, 64], got {p.score_ring}",
        ),
        (
            p.rank_by in ("method", "score"),
            f"rank_by must be 'method' or 'score', got {p.rank_by!r}",
        ),
        (
            p.thin_method in ("mean", "best", *baselines),
            f"thin_method must be 'mean', 'best' or one of the baselines, got {p.thin_method!r}",
        ),
    ]
