"""The training pipeline on real paintings: retraining one cluster, resuming, publishing."""

import shutil

from restauro.registry import Registry
from restauro.safetensors_io import sha256_file
from tests.data import paintings_dir, tiny_train_options
from training.evaluate import EvalOptions, evaluate, format_summary
from training.pipeline import RUNS, run_training


def test_only_cluster_retrains_one_and_copies_the_rest(tiny_registry, tmp_path):
    registry = Registry(shutil.copytree(tiny_registry, tmp_path / "reg"))
    base = registry.current_version()
    outcome = run_training(tiny_train_options(registry.root, only_cluster=1, epochs=2))
    assert registry.current_version() == outcome.version != base
    new, old = registry.path_of(outcome.version), registry.path_of(base)
    assert outcome.manifest["parent"] == base
    for rel in (
        "models/c0/generator.safetensors",
        "models/general/generator.safetensors",
        "features/state.safetensors",
        "clustering/state.safetensors",
    ):
        assert sha256_file(new / rel) == sha256_file(old / rel)
    assert sha256_file(new / "models/c1/generator.safetensors") != sha256_file(
        old / "models/c1/generator.safetensors"
    )
    assert outcome.manifest["models"]["c1"]["epochs"] == 2
    registry.load(outcome.version)  # verifies every sha256


def _quick_evaluation(registry, **options) -> dict:
    """``restauro evaluate`` of a tiny bundle: cluster, general, Telea; 2 candidates x 3 steps."""
    return evaluate(
        EvalOptions(
            registry=registry,
            images=paintings_dir(),
            candidates=2,
            steps=3,
            methods=("cluster", "general", "telea"),
            **options,
        )
    ).report


def test_resume_then_evaluate_on_held_out_paintings(tmp_path):
    # 60 paintings with seed 3 put a handful into the fixed-hash validation split.
    options = dict(clusters=2, max_images=60, seed=3)
    first = run_training(tiny_train_options(tmp_path / "reg", epochs=1, promote=False, **options))
    resumed = run_training(tiny_train_options(tmp_path / "reg", epochs=2, resume=True, **options))
    general = resumed.manifest["models"]["general"]
    assert len(general["history"]) == 2 and not general.get("restarted")
    assert general["history"][0] == first.manifest["models"]["general"]["history"][0]
    # The general GAN trained further, so the cluster GANs fine-tuned from it start again from
    # the GAN this bundle ships, rather than continue from one it does not.
    for name in ("c0", "c1"):
        model = resumed.manifest["models"][name]
        assert model["restarted"] and model["init"] == "general" and len(model["history"]) == 2
    assert Registry(tmp_path / "reg").current_version() == resumed.version

    held_out = resumed.manifest["dataset"]["validation"]
    assert held_out and resumed.manifest["dataset"]["training"] + len(held_out) == 60
    # default: the training folder's held-out paintings only, spread over its styles
    report = _quick_evaluation(tmp_path / "reg", limit=2, diversity_samples=0)
    assert report["test_set"]["source"] == "validation split"
    paths = {r["path"] for r in report["rows"]}
    assert len(paths) == 2 and paths <= set(held_out)
    assert all(r["routed_to"] in (0, 1) for r in report["rows"])
    for summary in report["masks"].values():
        assert summary["paintings"] == 2
        assert sum(summary["routed_to"].values()) == 2
        for method in ("cluster", "general", "telea"):
            assert 0 < summary["methods"][method]["psnr_hole"]["mean"] < 60
    assert "cluster - general" in format_summary(report)


def test_resume_keeps_cluster_checkpoints_whose_start_has_not_moved(tmp_path):
    options = dict(max_images=24, promote=False)
    # the same budget again: the general GAN is where it was, so nothing starts over
    first = run_training(tiny_train_options(tmp_path / "a", **options))
    again = run_training(tiny_train_options(tmp_path / "a", resume=True, **options))
    for name in ("general", "c0", "c1"):
        model = again.manifest["models"][name]
        assert not model.get("restarted")
        assert model["history"] == first.manifest["models"][name]["history"]
    # clusters trained from scratch continue where they stopped when the general GAN trains on
    scratch = dict(options, init_from_general=False)
    first = run_training(tiny_train_options(tmp_path / "b", **scratch))
    longer = run_training(tiny_train_options(tmp_path / "b", epochs=2, resume=True, **scratch))
    c0 = longer.manifest["models"]["c0"]
    assert c0["init"] is None and not c0.get("restarted") and len(c0["history"]) == 2
    assert c0["history"][0] == first.manifest["models"]["c0"]["history"][0]


def test_bundle_with_encoders_restores_with_encoder_started_candidates(tmp_path):
    import numpy as np

    from restauro.inpaint import InpaintParams
    from restauro.request import RestoreRequest
    from restauro.restore import restore
    from tests.data import textured_image

    outcome = run_training(
        tiny_train_options(
            tmp_path / "reg",
            max_images=24,
            encoder=True,
            encoder_epochs=1,
            encoder_steps_per_epoch=3,
        )
    )
    assert all(outcome.manifest["models"][name]["encoder"] for name in ("c0", "c1", "general"))
    bundle = Registry(tmp_path / "reg").load()
    assert bundle.models(0).encoder is not None
    scan = textured_image(90, 120, seed=4)
    mask = np.zeros(scan.shape[:2], bool)
    mask[30:50, 40:70] = True
    request = RestoreRequest(candidates=4, steps=3)
    result = restore(scan, mask, bundle, request, engine=InpaintParams(encoder_fraction=0.5))
    assert len(result.candidates) == 4
    assert any(g.from_encoder for loss in result.restoration.losses for g in loss.groups)


def test_data_efficient_options_are_trained_recorded_and_load(tmp_path):
    """init from general + EMA + spectral norm + DiffAugment + an iterations budget, end to end."""
    import torch

    from restauro.bundle import GENERAL

    outcome = run_training(
        tiny_train_options(
            tmp_path / "reg",
            max_images=24,
            iterations=2,
            init_from_general=True,
            spectral_norm=True,
            ema=0.9,
            diffaugment="color,translation,cutout",
        )
    )
    manifest = outcome.manifest
    training = manifest["training"]
    assert training["init_from_general"] and training["spectral_norm"] and training["ema"] == 0.9
    assert training["diffaugment"] == "color,translation,cutout" and training["iterations"] == 2
    for name in ("c0", "c1", "general"):
        info = manifest["models"][name]
        assert info["dcgan"]["spectral_norm"] is True and info["ema"] == 0.9
        assert info["steps"] >= 1
    assert manifest["models"]["general"]["init"] is None
    assert manifest["models"]["c0"]["init"] == manifest["models"]["c1"]["init"] == "general"

    bundle = Registry(tmp_path / "reg").load()  # sha256-checked; D built with spectral norm
    d = bundle.models(0).discriminator
    assert any(hasattr(m, "parametrizations") for m in d.modules())
    assert torch.isfinite(d(torch.zeros(1, 3, 64, 64))).all()
    # the shipped G is the EMA generator of the run's checkpoint
    run = next((tmp_path / "reg" / ".runs").iterdir())
    from restauro.safetensors_io import load_module_state

    ema = load_module_state(run / "general/checkpoint/generator_ema.safetensors")
    shipped = bundle.models(GENERAL).generator.state_dict()
    assert all(torch.equal(ema[k], shipped[k].contiguous()) for k in ema)


def test_only_cluster_can_fine_tune_from_the_base_bundles_general(tiny_registry, tmp_path):
    registry = Registry(shutil.copytree(tiny_registry, tmp_path / "reg"))
    outcome = run_training(
        tiny_train_options(registry.root, only_cluster=0, epochs=1, init_from_general=True)
    )
    assert outcome.manifest["models"]["c0"]["init"] == "general"
    registry.load(outcome.version)


def test_checkpoint_every_reaches_the_dcgans_and_the_manifest(tmp_path):
    options = tiny_train_options(tmp_path / "reg", epochs=3, checkpoint_every=2, max_images=24)
    outcome = run_training(options)
    assert outcome.manifest["training"]["checkpoint_every"] == 2
    samples = tmp_path / "reg" / RUNS / options.run_key() / "general" / "samples"
    assert sorted(p.name for p in samples.iterdir()) == ["epoch_002.png", "epoch_003.png"]
    assert len(outcome.manifest["models"]["general"]["history"]) == 3


def test_a_128_px_bundle_trains_restores_and_evaluates(tmp_path):
    """The paper's resolution end to end: one block deeper nets, routed restoration, evaluation."""
    import numpy as np
    import torch

    from restauro.request import RestoreRequest
    from restauro.restore import restore
    from tests.data import squeezenet_weights, textured_image

    # 60 paintings with seed 3 put a handful into the fixed-hash validation split
    options = tiny_train_options(tmp_path / "reg", image_size=128, max_images=60, seed=3)
    outcome = run_training(options)
    assert outcome.manifest["image_size"] == 128
    bundle = Registry(tmp_path / "reg").load()
    models = bundle.models(0)
    with torch.inference_mode():
        assert models.generator(torch.zeros(1, models.nz)).shape == (1, 3, 128, 128)
    scan = textured_image(300, 240, seed=2)
    mask = np.zeros(scan.shape[:2], bool)
    mask[100:160, 90:150] = True
    result = restore(scan, mask, bundle, RestoreRequest(candidates=2, steps=3))
    assert result.candidates
    for image in result.candidates:
        assert image.shape == scan.shape and np.array_equal(image[~mask], scan[~mask])
    report = _quick_evaluation(
        tmp_path / "reg", limit=1, perceptual_weights=squeezenet_weights(), diversity_samples=4
    )
    for summary in report["masks"].values():
        assert 0 < summary["methods"]["cluster"]["psnr_hole"]["mean"] < 60
    assert set(report["diversity"]["gans"]) == {"general", "c0", "c1"}
