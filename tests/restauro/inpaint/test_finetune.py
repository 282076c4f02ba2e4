"""Generator fine-tuning at restoration time (Deep Generative Prior): a copy of G moves, the shared
networks never do, pixels outside the mask never change, and 0 steps is exactly the plain search."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from restauro.errors import InvalidParameter
from restauro.images import to_model_range
from restauro.inpaint import GeneratorFineTuner, InpaintParams, ZOptimizer, inpaint
from tests.restauro.inpaint.conftest import synthetic_paintings

TUNED = InpaintParams(
    candidates=3, steps=6, seed=0, finetune_steps=8, finetune_candidates=2, finetune_lr=1e-4
)


def _mask(shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[30:50, 20:45] = True
    return mask


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_outside_the_mask_nothing_changes_and_the_tuned_candidates_lead(tiny_models, painting):
    mask = _mask(painting.shape[:2])
    result = inpaint(painting, mask, tiny_models, TUNED)
    for image in [*result.candidates, *result.raw]:
        assert np.array_equal(image[~mask], painting[~mask])
    assert [loss.groups[0].finetuned for loss in result.losses] == [True, True, False]
    assert result.groups[0].finetune_steps == 8 and result.groups[0].finetuned == 2
    tuned = [loss.total for loss in result.losses[:2]]
    assert tuned == sorted(tuned) and all(np.isfinite(t) for t in tuned)


def test_the_shared_networks_are_unchanged_after_a_fine_tuned_restoration(tiny_models, painting):
    g, d = tiny_models.generator, tiny_models.discriminator
    g.train()  # whatever mode the cache left them in must come back, with every flag
    before_g, before_d = _snapshot(g), _snapshot(d)
    flags = [p.requires_grad for p in g.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in g.parameters()]
    inpaint(painting, _mask(painting.shape[:2]), tiny_models, TUNED)
    after_g, after_d = _snapshot(g), _snapshot(d)
    assert all(torch.equal(before_g[k], after_g[k]) for k in before_g)  # weights and BN stats
    assert all(torch.equal(before_d[k], after_d[k]) for k in before_d)
    assert g.training and [p.requires_grad for p in g.parameters()] == flags
    for p, grad in zip(g.parameters(), grads, strict=True):  # no gradient leaked into G
        assert (p.grad is None and grad is None) or torch.equal(p.grad, grad)
    g.eval()


def test_same_seed_same_fine_tuned_restoration(tiny_models, painting):
    mask = _mask(painting.shape[:2])
    a = inpaint(painting, mask, tiny_models, TUNED)
    b = inpaint(painting, mask, tiny_models, TUNED)
    for x, y in zip(a.candidates, b.candidates, strict=True):
        assert np.array_equal(x, y)
    assert [loss.total for loss in a.losses] == [loss.total for loss in b.losses]


def test_zero_steps_is_exactly_the_plain_search(tiny_models, painting):
    mask = _mask(painting.shape[:2])
    plain = inpaint(painting, mask, tiny_models, dataclasses.replace(TUNED, finetune_steps=0))
    other_knobs = dataclasses.replace(
        TUNED, finetune_steps=0, finetune_lr=1e-3, finetune_candidates=3, finetune_known_weight=0
    )
    again = inpaint(painting, mask, tiny_models, other_knobs)
    for x, y in zip(plain.candidates, again.candidates, strict=True):
        assert np.array_equal(x, y)
    assert not any(loss.groups[0].finetuned for loss in plain.losses)
    searched = ZOptimizer(InpaintParams(candidates=2, steps=2)).optimize(
        tiny_models.generator,
        tiny_models.discriminator,
        torch.zeros(1, 3, 64, 64),
        torch.ones(1, 1, 64, 64),
    )
    tuner = GeneratorFineTuner(InpaintParams(finetune_steps=0))
    assert (
        tuner.finetune(
            tiny_models.generator,
            tiny_models.discriminator,
            torch.zeros(1, 3, 64, 64),
            torch.ones(1, 1, 64, 64),
            searched,
        )
        is searched
    )


def test_fine_tuning_fits_the_known_pixels_much_better_than_the_search_alone(tiny_models):
    """A target the briefly trained tiny G cannot draw: z alone gets stuck, G's weights can move.

    Property, not a threshold of one trajectory: the weighted contextual loss (Yeh et al.) and the
    L1 over every known pixel both drop by a wide margin; the measured drop is far larger."""
    target = to_model_range(synthetic_paintings(1, seed=7)[0])
    missing = torch.zeros(1, 1, 64, 64)
    missing[..., 20:44, 16:40] = 1
    params = InpaintParams(
        candidates=4, steps=40, finetune_steps=60, finetune_lr=1e-3, finetune_candidates=1
    )
    g, d = tiny_models.generator, tiny_models.discriminator
    searched = ZOptimizer(params).optimize(g, d, target, missing)
    tuned = GeneratorFineTuner(params).finetune(g, d, target, missing, searched)
    known = 1 - missing

    def fit(images: torch.Tensor) -> float:
        return float((known * (images - target)).abs().sum())

    assert float(tuned.contextual[0]) < 0.8 * float(searched.contextual[0])
    assert fit(tuned.completions[:1]) < 0.8 * fit(searched.completions[:1])
    assert bool(tuned.finetuned[0]) and not bool(tuned.finetuned[1:].any())
    # the untouched candidates are passed through as the search left them
    assert torch.equal(tuned.completions[1:], searched.completions[1:])


def test_bad_fine_tuning_parameters_are_typed_errors() -> None:
    for bad in (
        {"finetune_steps": -1},
        {"finetune_steps": 10**6},
        {"finetune_lr": 0.0},
        {"finetune_lr": float("nan")},
        {"finetune_candidates": 0},
        {"finetune_known_weight": -1.0},
    ):
        with pytest.raises(InvalidParameter):
            InpaintParams(**bad)


def test_fine_tuning_more_candidates_than_exist_tunes_them_all(tiny_models):
    tuner = GeneratorFineTuner(InpaintParams(finetune_steps=3, finetune_candidates=5))
    assert tuner.count(2) == 2
    assert GeneratorFineTuner(InpaintParams(finetune_steps=0)).count(8) == 0


def test_held_out_pixels_are_fitted_by_fine_tuning_and_the_search_keeps_its_prediction(
    tiny_models,
):
    """A ring the z-search did not see (it is held out to score the search) is known to
    fine-tuning: the delivered completion fits it far better than the search predicted it, and
    ``searched`` keeps what the search drew, row for row. Without ``fit_missing`` the ring stays
    unknown to fine-tuning too. Properties of any trajectory: the ring is part of the L1 that
    fine-tuning minimises, from a search that never saw it."""
    target = to_model_range(synthetic_paintings(1, seed=7)[0])
    hole = torch.zeros(1, 1, 64, 64)
    hole[..., 24:40, 20:36] = 1
    missing = torch.zeros(1, 1, 64, 64)
    missing[..., 18:46, 14:42] = 1  # the hole and a 6 px ring around it
    ring = missing - hole
    params = InpaintParams(
        candidates=3, steps=30, finetune_steps=60, finetune_lr=1e-3, finetune_candidates=1
    )
    g, d = tiny_models.generator, tiny_models.discriminator
    searched = ZOptimizer(params).optimize(g, d, target, missing)
    tuner = GeneratorFineTuner(params)
    seen = tuner.finetune(g, d, target, missing, searched, fit_missing=hole)
    unseen = tuner.finetune(g, d, target, missing, searched)

    def ring_error(images: torch.Tensor) -> float:
        return float((ring * (images[:1] - target)).abs().sum())

    assert ring_error(seen.completions) < 0.8 * ring_error(searched.completions)
    assert ring_error(seen.completions) < ring_error(unseen.completions)
    for tuned in (seen, unseen):
        assert torch.equal(tuned.searched, searched.completions)  # one tuned: the order stays
        assert torch.equal(tuned.search_completions, searched.completions)
    assert searched.search_completions is searched.completions  # not fine-tuned: the same
    again = tuner.finetune(g, d, target, missing, searched, fit_missing=missing)
    assert torch.equal(again.completions, unseen.completions)  # the default is the search's mask
