"""RestoreRequest and plan: one set of defaults and bounds, one place that decides the target."""

from __future__ import annotations

import pytest

from restauro.config import Settings
from restauro.errors import InvalidParameter, UnknownCluster
from restauro.inpaint import InpaintParams
from restauro.registry import Registry
from restauro.request import AUTO, RestorePlan, RestoreRequest
from restauro.restore import plan
from tests.conftest import square_mask, synthetic_scan


def test_defaults_come_from_the_engine_unless_the_deployment_sets_them() -> None:
    request = RestoreRequest.from_settings(Settings(), seed=5)
    assert (request.candidates, request.steps) == (InpaintParams.candidates, InpaintParams.steps)
    assert request.target == AUTO and request.seed == 5
    configured = RestoreRequest.from_settings(Settings(candidates=3, steps=40), seed=5)
    assert (configured.candidates, configured.steps) == (3, 40)
    assert request.inpaint_params().candidates == InpaintParams.candidates


def test_fine_tuning_keeps_its_share_of_the_requests_step_budget() -> None:
    from restauro.restore import PRODUCT

    assert PRODUCT.finetune_steps > 0
    full = RestoreRequest(steps=PRODUCT.steps).inpaint_params(PRODUCT)
    assert full.finetune_steps == PRODUCT.finetune_steps
    longer = RestoreRequest(steps=2 * PRODUCT.steps).inpaint_params(PRODUCT)
    assert longer.finetune_steps == PRODUCT.finetune_steps
    half = RestoreRequest(steps=PRODUCT.steps // 2).inpaint_params(PRODUCT)
    assert half.steps == PRODUCT.steps // 2
    assert half.finetune_steps == -(-PRODUCT.finetune_steps // 2)
    assert RestoreRequest(steps=3).inpaint_params(PRODUCT).finetune_steps >= 1
    assert RestoreRequest(steps=3).inpaint_params().finetune_steps == 0  # the paper's: none


def test_an_unset_seed_is_drawn_and_recorded() -> None:
    seeds = {RestoreRequest.from_settings(Settings()).seed for _ in range(8)}
    assert len(seeds) > 1 and all(0 <= s < 2**31 for s in seeds)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"candidates": 0},
        {"candidates": 65},
        {"steps": 5001},
        {"seed": 2**31},
        {"seed": -1},
        {"cluster": -1},
        {"cluster": 1, "general": True},
        {"candidates": True},
    ],
)
def test_bad_values_are_refused_with_the_name_of_the_parameter(kwargs) -> None:
    with pytest.raises(InvalidParameter) as info:
        RestoreRequest.from_settings(Settings(), **kwargs)
    assert any(name in info.value.detail for name in ("candidates", "steps", "seed", "cluster"))


def test_plan_routes_auto_and_names_the_queue(tiny_registry) -> None:
    bundle = Registry(tiny_registry).load()
    scan, mask = synthetic_scan(), square_mask()
    routed = plan(bundle, scan, mask, RestoreRequest(seed=1))
    assert routed.route is not None and routed.cluster == routed.route.cluster
    assert routed.target == f"c{routed.cluster}" and routed.queue == f"restore.c{routed.cluster}"
    assert routed.request.target == routed.cluster and routed.bundle_version == bundle.version
    general = plan(bundle, scan, mask, RestoreRequest(target="general"))
    assert (general.target, general.queue, general.cluster, general.route) == (
        "general",
        "restore.general",
        None,
        None,
    )
    with pytest.raises(UnknownCluster, match="no cluster 7"):
        plan(bundle, scan, mask, RestoreRequest(target=7))


def test_a_plan_survives_job_json(tiny_registry) -> None:
    bundle = Registry(tiny_registry).load()
    chosen = plan(bundle, synthetic_scan(), square_mask(), RestoreRequest(candidates=3, seed=9))
    assert RestorePlan.from_dict(chosen.to_dict()) == chosen
    with pytest.raises(InvalidParameter):
        RestorePlan("v", "c0", "restore.c0", RestoreRequest())  # an unresolved target
