"""Bundles and the registry: round trip, integrity, atomic publish, promote and roll back."""

import json

import numpy as np
import pytest
import torch

from restauro.bundle import GENERAL, prefill_hole
from restauro.clustering import fit_clusters
from restauro.dcgan import DCGANConfig, Discriminator, Generator
from restauro.errors import BundleCorrupt, BundleExists, BundleNotFound, UnknownCluster
from restauro.features import create_extractor
from restauro.registry import Registry
from tests.data import textured_image

CONFIG = DCGANConfig(image_size=64, nz=16, ngf=8, ndf=8)


def publish_tiny(registry: Registry, version: str | None = None, seed: int = 0):
    """A real (untrained) bundle, built by hand, plus the in-memory objects it was built from."""
    torch.manual_seed(seed)
    images = [textured_image(96, 128, seed=s) for s in range(12)]
    extractor = create_extractor("sift", vocab_size=16, seed=seed)
    extractor.fit(images)
    model, _, report = fit_clusters(extractor.transform(images), 2, seed=seed)
    nets = {t: (Generator(CONFIG).eval(), Discriminator(CONFIG).eval()) for t in (0, 1, GENERAL)}
    with registry.publishing(version) as writer:
        features = writer.add_features(extractor)
        writer.add_clustering(model)
        for target, (g, d) in nets.items():
            writer.add_models(target, g, d, info={"size": 6})
        manifest = writer.finish(
            {
                "created": "2026-11-22T00:00:00+00:00",
                "features": features,
                "image_size": 64,
                "clusters": [{"id": c, "size": s} for c, s in enumerate(report.sizes)],
                "general": {"size": 12},
            }
        )
    return manifest["version"], extractor, model, nets


def test_round_trip_gives_identical_routing_and_generators(tmp_path):
    registry = Registry(tmp_path)
    version, extractor, model, nets = publish_tiny(registry)
    registry.promote(version)
    bundle = registry.load()
    assert bundle.version == version and bundle.cluster_ids == [0, 1]

    scan = textured_image(300, 220, seed=99)
    mask = np.zeros(scan.shape[:2], bool)
    mask[100:140, 50:120] = True
    filled, small = prefill_hole(scan, mask)
    expected = model.distances(extractor.transform([filled], [small]))[0]
    route = bundle.route(scan, mask)
    assert route.cluster == int(expected.argmin())
    assert [route.distances[i] for i in (0, 1)] == pytest.approx(expected.tolist())

    z = torch.randn(3, CONFIG.nz, generator=torch.Generator().manual_seed(1))
    for target in (0, 1, GENERAL):
        loaded = bundle.models(target)
        g, d = nets[target]
        for net, saved in ((loaded.generator, g), (loaded.discriminator, d)):
            pairs = zip(net.state_dict().values(), saved.state_dict().values(), strict=True)
            assert all(torch.equal(a, b) for a, b in pairs)  # the very same weights
        with torch.no_grad():  # loaded nets run channels_last on a CPU: same maths, other order
            assert torch.allclose(loaded.generator(z), g(z), rtol=1e-5, atol=1e-6)
            assert torch.allclose(loaded.discriminator(g(z)), d(g(z)), rtol=1e-4, atol=1e-12)
    with pytest.raises(UnknownCluster):
        bundle.models(7)


def test_tampered_or_incomplete_bundle_is_refused(tmp_path):
    registry = Registry(tmp_path)
    version, *_ = publish_tiny(registry)
    weights = tmp_path / version / "models/c1/generator.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleCorrupt, match="does not match its sha256"):
        registry.load(version)
    weights.unlink()
    with pytest.raises(BundleCorrupt, match=r"missing models/c1/generator\.safetensors"):
        registry.load(version)


def test_failed_publish_leaves_nothing(tmp_path):
    registry = Registry(tmp_path)
    with pytest.raises(RuntimeError, match="boom"), registry.publishing("v1") as writer:
        (writer.path / "features").mkdir()
        raise RuntimeError("boom")
    assert registry.versions() == []
    assert [p.name for p in tmp_path.iterdir()] == []


def test_versions_are_immutable(tmp_path):
    registry = Registry(tmp_path)
    publish_tiny(registry, "v1")
    with pytest.raises(BundleExists), registry.publishing("v1"):
        pass


def test_promote_and_rollback(tmp_path):
    registry = Registry(tmp_path)
    with pytest.raises(BundleNotFound, match="no current bundle"):
        registry.load()
    for v in ("v1", "v2"):
        publish_tiny(registry, v)
    assert registry.versions() == ["v1", "v2"]
    assert registry.promote("v1") is None
    assert registry.promote("v2") == "v1"
    publish_tiny(registry, "v3")
    registry.promote("v3")
    assert registry.rollback() == "v2" and registry.current_version() == "v2"
    assert registry.rollback() == "v1" and registry.current_version() == "v1"
    with pytest.raises(BundleNotFound):
        registry.rollback()  # v1 was never preceded by anything
    with pytest.raises(BundleNotFound):
        registry.promote("v9")
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [h["version"] for h in history] == ["v1", "v2", "v3", "v2", "v1"]


def test_path_like_versions_are_rejected(tmp_path):
    from restauro.errors import InvalidParameter

    with pytest.raises(InvalidParameter):
        Registry(tmp_path).load("../etc")
