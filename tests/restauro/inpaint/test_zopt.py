import itertools
import math

import numpy as np
import torch

from restauro.images import to_model_range
from restauro.inpaint import InpaintParams, ZOptimizer
from restauro.inpaint.zopt import EARLY_STOP_EVERY, _EarlyStop, prior_radius, project_to_prior
from tests.restauro.inpaint.conftest import synthetic_paintings


def _problem() -> tuple[torch.Tensor, torch.Tensor]:
    target = to_model_range(synthetic_paintings(1, seed=7)[0])
    missing = torch.zeros(1, 1, 64, 64)
    missing[..., 20:44, 16:40] = 1
    return target, missing


def _reachable_problem(models) -> tuple[torch.Tensor, torch.Tensor]:
    """A patch the generator makes exactly, so the search has a zero-loss optimum to find."""
    z_true = torch.randn(1, models.config.nz, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        target = models.generator.eval()(z_true)
    missing = torch.zeros(1, 1, 64, 64)
    missing[..., 16:48, 16:48] = 1
    return target, missing


def _run(models, **overrides):
    params = InpaintParams(**{"candidates": 4, "steps": 30, "patience": 0, **overrides})
    target, missing = _problem()
    return ZOptimizer(params).optimize(models.generator, models.discriminator, target, missing)


def test_loss_decreases_over_steps(tiny_models):
    target, missing = _reachable_problem(tiny_models)
    g, d = tiny_models.generator, tiny_models.discriminator
    start = ZOptimizer(InpaintParams(candidates=4, steps=0)).optimize(g, d, target, missing)
    params = InpaintParams(candidates=4, steps=60, lr=0.05, patience=0)
    result = ZOptimizer(params).optimize(g, d, target, missing)
    assert result.steps == 60 and len(result.curve) == 60
    # A toy problem with a wide margin: the optimum is reachable (loss 0), and 60 steps reach
    # 0.04-0.07 of the start (fixtures of seeds 0-2, one and two threads): 0.5 has 7x room.
    assert float(result.contextual[0]) < 0.5 * float(start.contextual.min())
    assert float(result.total.mean()) < float(start.total.mean())
    assert result.curve[-1] < result.curve[0]


def test_candidates_are_ranked_by_ascending_total_loss(tiny_models):
    result = _run(tiny_models, candidates=6)
    totals = result.total.tolist()
    assert totals == sorted(totals)
    expected = result.contextual + 0.003 * result.perceptual
    assert torch.allclose(result.total, expected, atol=1e-4)
    assert result.completions.shape == (6, 3, 64, 64)
    assert float(result.completions.abs().max()) <= 1.0


def test_reported_losses_are_those_of_the_returned_completions(tiny_models):
    result = _run(tiny_models)
    target, missing = _problem()
    optimizer = ZOptimizer(InpaintParams())
    from restauro.inpaint.context import context_weights

    with torch.no_grad():
        logits = tiny_models.discriminator.eval()(result.completions)
        total, _, _ = optimizer.losses(
            result.completions, logits, target, context_weights(missing, 7)
        )
    assert torch.allclose(total, result.total, rtol=1e-4, atol=1e-4)


def test_same_seed_same_result_other_seed_other_result(tiny_models):
    a, b = _run(tiny_models, seed=3), _run(tiny_models, seed=3)
    c = _run(tiny_models, seed=4)
    assert torch.equal(a.completions, b.completions) and torch.equal(a.total, b.total)
    assert not torch.equal(a.completions, c.completions)


def test_early_stopping_ends_a_plateau(tiny_models):
    result = _run(tiny_models, steps=500, lr=0.05, patience=5, tolerance=0.05)
    assert result.steps < 500 and len(result.curve) == result.steps
    # The curve is read back from the device in chunks: a stop falls on a chunk boundary.
    assert result.steps % EARLY_STOP_EVERY == 0


def test_early_stopping_that_never_fires_changes_nothing(tiny_models):
    """Checking for a plateau reads numbers back; it must not change the search itself."""
    plain = _run(tiny_models, steps=40, seed=2)
    watched = _run(tiny_models, steps=40, seed=2, patience=1000)
    assert watched.steps == plain.steps == 40 and watched.curve == plain.curve
    assert torch.equal(watched.completions, plain.completions)
    assert plain.curve == sorted(plain.curve, reverse=True)  # the best so far never rises


def test_early_stop_rule_matches_a_per_step_check():
    values = [10.0, 9.0, 8.99, 8.98, 8.97, 8.96, 8.95, 8.94]
    stepwise = _EarlyStop(patience=3, tolerance=0.01)
    stop_at = next(i for i, v in enumerate(values) if stepwise.should_stop([v], first_step=i))
    assert stop_at == 4  # no 1% gain after step 1: the 3rd step without one stops
    chunked = _EarlyStop(patience=3, tolerance=0.01)
    assert not chunked.should_stop(values[:4], first_step=0)
    assert chunked.should_stop(values[4:], first_step=4)


def test_latents_stay_in_the_prior_ball(tiny_models):
    result = _run(tiny_models, lr=5.0, steps=10)  # a huge lr would throw z far away
    radius = prior_radius(tiny_models.config.nz)
    assert float(result.latents.norm(dim=1).max()) <= radius + 1e-4
    z = torch.full((2, 100), 3.0)
    project_to_prior(z, prior_radius(100))
    assert math.isclose(float(z[0].norm()), prior_radius(100), rel_tol=1e-5)


def test_models_are_given_back_in_the_state_they_came(tiny_models):
    g = tiny_models.generator
    g.train()
    before = [p.requires_grad for p in g.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in g.parameters()]
    _run(tiny_models, steps=2)
    assert g.training and [p.requires_grad for p in g.parameters()] == before
    for p, grad in zip(g.parameters(), grads, strict=True):  # no gradient leaked into G
        assert (p.grad is None and grad is None) or torch.equal(p.grad, grad)
    g.eval()


class _PerfectEncoder(torch.nn.Module):
    """Returns a fixed latent: stands for a trained encoder in the initialisation logic."""

    def __init__(self, z: torch.Tensor) -> None:
        super().__init__()
        self.z = torch.nn.Parameter(z)

    def forward(self, masked: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        assert masked.shape[1:] == (3, 64, 64) and known.shape[1:] == (1, 64, 64)
        return self.z.expand(masked.shape[0], -1)


def test_encoder_starts_a_fraction_of_the_candidates(tiny_models):
    target, missing = _reachable_problem(tiny_models)
    z_true = torch.randn(1, tiny_models.config.nz, generator=torch.Generator().manual_seed(11))
    params = InpaintParams(candidates=4, steps=0, encoder_fraction=0.5)
    result = ZOptimizer(params).optimize(
        tiny_models.generator,
        tiny_models.discriminator,
        target,
        missing,
        encoder=_PerfectEncoder(z_true),
    )
    assert int(result.from_encoder.sum()) == 2
    assert bool(result.from_encoder[0])  # the exact guess ranks first
    assert np.isclose(float(result.contextual[0]), 0.0, atol=1e-3)


def test_cosine_schedule_anneals_the_learning_rate_to_zero():
    cosine = ZOptimizer(InpaintParams(lr=0.1, steps=100, schedule="cosine"))
    rates = [cosine.learning_rate(s) for s in range(100)]
    assert rates[0] == 0.1 and math.isclose(rates[50], 0.05, rel_tol=1e-9)
    assert all(a > b for a, b in itertools.pairwise(rates)) and rates[-1] < 1e-4
    assert ZOptimizer(InpaintParams(lr=0.1, steps=100)).learning_rate(99) == 0.1


def test_pruned_candidates_follow_the_same_path_as_in_the_full_batch(tiny_models):
    """Candidates are independent and Adam is per coordinate: narrowing the batch (moments
    carried over) must not change the kept candidates' search, only stop the others'."""
    full = _run(tiny_models, candidates=6, steps=25, lr=0.05)
    pruned = _run(tiny_models, candidates=6, steps=25, lr=0.05, keep=2, prune_after=8)
    assert pruned.completions.shape == full.completions.shape
    assert pruned.total.tolist() == sorted(pruned.total.tolist())
    for latent, total in zip(pruned.latents[:2], pruned.total[:2], strict=True):
        match = int((full.latents - latent).norm(dim=1).argmin())
        assert torch.allclose(full.latents[match], latent, atol=1e-4)
        assert math.isclose(float(full.total[match]), float(total), rel_tol=1e-4)
    # the others stopped after 8 steps, so the full search got at least as far on them
    assert float(full.total.sum()) <= float(pruned.total.sum()) + 1e-4


def test_invalid_schedule_or_keep_is_refused():
    from restauro.errors import InvalidParameter

    for bad in ({"schedule": "linear"}, {"keep": -1}, {"prune_after": -2}):
        try:
            InpaintParams(**bad)
        except InvalidParameter:
            continue
        raise AssertionError(f"{bad} was accepted")


def _problems() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Three different patches and holes, one with padding that is neither hole nor painting."""
    paintings = synthetic_paintings(3, seed=3)
    out = []
    for i, painting in enumerate(paintings):
        missing = torch.zeros(1, 1, 64, 64)
        missing[..., 10 + 6 * i : 34 + 6 * i, 14 : 30 + 4 * i] = 1
        valid = None
        if i == 2:
            valid = torch.ones(1, 1, 64, 64)
            valid[..., :, 56:] = 0
        out.append((to_model_range(painting), missing, valid))
    return out


def test_a_batch_of_problems_gives_each_the_result_it_gets_alone(tiny_models):
    """Windows of a scan and jobs of several requests are searched in one batch; each must come
    back as if searched alone (own seed, candidates, steps, pruning, early stopping, lambda)."""
    from restauro.inpaint.zopt import ZProblem

    g, d = tiny_models.generator, tiny_models.discriminator
    settings = [
        InpaintParams(candidates=4, steps=30, seed=1, keep=2, prune_after=10),
        InpaintParams(candidates=3, steps=12, seed=2, keep=0, perceptual_weight=0.01),
        InpaintParams(candidates=5, steps=40, seed=3, patience=5, tolerance=0.5, keep=0),
    ]
    problems = [
        ZProblem(target, missing, valid, params)
        for (target, missing, valid), params in zip(_problems(), settings, strict=True)
    ]
    batched = ZOptimizer(InpaintParams()).optimize_batch(g, d, problems)
    assert len(batched) == 3
    for problem, together in zip(problems, batched, strict=True):
        alone = ZOptimizer(problem.params).optimize(
            g, d, problem.target, problem.missing, problem.valid
        )
        assert together.steps == alone.steps and len(together.curve) == alone.steps
        assert together.completions.shape == alone.completions.shape
        assert torch.allclose(together.latents, alone.latents, atol=1e-4)
        assert torch.allclose(together.completions, alone.completions, atol=1e-4)
        assert torch.allclose(together.total, alone.total, rtol=1e-4, atol=1e-4)
        assert torch.equal(together.from_encoder, alone.from_encoder)
        assert np.allclose(together.curve, alone.curve, rtol=1e-4, atol=1e-4)
    assert batched[2].steps < 40  # the plateau rule ended the third search early, alone


def test_an_empty_batch_and_a_batch_of_zero_steps(tiny_models):
    from restauro.inpaint.zopt import ZProblem

    g, d = tiny_models.generator, tiny_models.discriminator
    optimizer = ZOptimizer(InpaintParams(candidates=2, steps=0))
    assert optimizer.optimize_batch(g, d, []) == []
    target, missing = _problem()
    (result,) = optimizer.optimize_batch(g, d, [ZProblem(target, missing)])
    assert result.steps == 0 and result.curve == [] and result.completions.shape[0] == 2
