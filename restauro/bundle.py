"""A model bundle: everything one version of Restauro needs to route and restore, on disk.

Layout (diffusers-style: a manifest plus one folder per component)::

    <version>/manifest.json      version, created, features, clusters, general, training, files
    <version>/features/state.safetensors
    <version>/clustering/state.safetensors
    <version>/models/c<k>/generator.safetensors, discriminator.safetensors[, encoder.safetensors]
    <version>/models/general/...

Weights are safetensors (loading a pickle runs code). The manifest lists the sha256 of every file
and loading checks them, so a bundle that was tampered with or half-copied is refused rather than
served. A bundle is written once into a staging folder and renamed into place (atomic on POSIX);
afterwards nothing writes to it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy

from restauro.atomic import write_json_atomic
from restauro.clustering import ClusterModel
from restauro.dcgan import DCGANConfig, Discriminator, Generator
from restauro.errors import BundleCorrupt, BundleNotFound, UnknownCluster
from restauro.features import FeatureExtractor, load_extractor
from restauro.images import fit_longer_side
from restauro.safetensors_io import load_module_state, save_module, sha256_file

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
GENERAL = "general"
ROUTING_SIDE = 512  # routing sees the scan at most this large; features shrink further anyway

Target = int | str  # a cluster id, or "general"


def target_name(target: Target) -> str:
    """The folder / queue name of a target: ``c3`` or ``general``."""
    return GENERAL if target == GENERAL else f"c{int(target)}"


@dataclass(frozen=True)
class Route:
    """Where a damaged image goes: its nearest cluster and the distance to every centroid."""

    cluster: int
    distances: dict[int, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "distances": {str(k): v for k, v in self.distances.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Route:
        distances = {int(k): float(v) for k, v in data["distances"].items()}
        return cls(int(data["cluster"]), distances)


def prefill_hole(rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill the hole from its surroundings (Telea) so features see no black blotch.

    Routing must use the visible pixels only: a hole filled with black or noise would pull every
    damaged painting toward whichever cluster has dark paintings.
    """
    small = fit_longer_side(rgb, ROUTING_SIDE)
    if small.shape[:2] != rgb.shape[:2]:
        m = cv2.resize(mask.astype(np.uint8), small.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    else:
        m = mask.astype(np.uint8)
    return cv2.inpaint(small, m * 255, 5, cv2.INPAINT_TELEA), m.astype(bool)


class Bundle:
    """A loaded, verified bundle. Routing state is loaded eagerly, GANs lazily per device."""

    def __init__(self, path: Path, verify: bool = True) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise BundleNotFound(f"no bundle at {self.path} (missing {MANIFEST})")
        try:
            self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise BundleCorrupt(f"unreadable manifest in {self.path}: {exc}") from exc
        if verify:
            self.verify()
        feats = self.manifest["features"]
        self.extractor: FeatureExtractor = load_extractor(
            feats["kind"],
            feats.get("params", {}),
            load_numpy(str(self.path / "features/state.safetensors")),
        )
        self.cluster_model = ClusterModel.from_state(
            load_numpy(str(self.path / "clustering/state.safetensors"))
        )
        self._models: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    # --- identity -------------------------------------------------------------------------------
    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def image_size(self) -> int:
        return int(self.manifest["image_size"])

    @property
    def cluster_ids(self) -> list[int]:
        return [int(c["id"]) for c in self.manifest["clusters"]]

    def targets(self) -> list[Target]:
        return [*self.cluster_ids, GENERAL]

    def verify(self) -> None:
        """Check every file against the sha256 in the manifest."""
        for rel, digest in self.manifest.get("files", {}).items():
            file = self.path / rel
            if not file.is_file():
                raise BundleCorrupt(f"bundle {self.path.name} is missing {rel}")
            if sha256_file(file) != digest:
                raise BundleCorrupt(f"bundle {self.path.name}: {rel} does not match its sha256")

    def check_target(self, target: Target) -> str:
        """The name (``c3`` / ``general``) of a target this bundle has, else UnknownCluster."""
        if target != GENERAL and int(target) not in self.cluster_ids:
            raise UnknownCluster(
                f"bundle {self.version} has no cluster {target} (clusters: {self.cluster_ids})"
            )
        return target_name(target)

    def sample_path(self, target: Target) -> Path:
        return self.path / "models" / self.check_target(target) / "samples.png"

    # --- routing --------------------------------------------------------------------------------
    def route(self, rgb: np.ndarray, mask: np.ndarray) -> Route:
        """The nearest cluster for a damaged painting, from its visible pixels."""
        filled, small_mask = prefill_hole(rgb, mask)
        features = self.extractor.transform([filled], [small_mask])
        dist = self.cluster_model.distances(features)[0]
        return Route(int(dist.argmin()), {i: float(d) for i, d in enumerate(dist)})

    # --- models ---------------------------------------------------------------------------------
    def models(self, target: Target, device: str = "cpu"):
        """Generator, discriminator (and encoder, if trained) of one target, cached per device."""
        from restauro.inpaint import GANModels

        name = self.check_target(target)
        with self._lock:
            key = (name, device)
            if key not in self._models:
                folder = self.path / "models" / name
                info = self.manifest["models"][name]
                config = DCGANConfig.from_dict(info["dcgan"])
                generator = _load_net(Generator(config), folder / "generator.safetensors", device)
                discriminator = _load_net(
                    Discriminator(config), folder / "discriminator.safetensors", device
                )
                encoder = None
                if info.get("encoder"):
                    from restauro.encoder import Encoder, EncoderConfig

                    enc_config = EncoderConfig(**info["encoder"])
                    encoder = _load_net(Encoder(enc_config), folder / "encoder.safetensors", device)
                self._models[key] = GANModels(generator, discriminator, encoder, config, name)
            return self._models[key]


def _load_net(module: torch.nn.Module, path: Path, device: str) -> torch.nn.Module:
    """Weights in inference state, once per process; on a CPU in channels_last layout.

    oneDNN's convolutions run ~1.3x faster per z-optimization step in channels_last on the CPU
    (docs/bench-inpainting.md); doing it here, where a worker loads its nets once, costs nothing
    per request. Only the in-memory layout changes: the saved weights stay standard.
    """
    module.load_state_dict(load_module_state(path))
    module = module.to(device).eval().requires_grad_(False)
    if torch.device(device).type == "cpu":
        module = module.to(memory_format=torch.channels_last)
    return module


class BundleWriter:
    """Fills a staging folder; :meth:`Registry.publish` renames it into place when complete."""

    def __init__(self, staging: Path, version: str) -> None:
        self.path = staging
        self.version = version
        self.models: dict[str, dict[str, Any]] = {}
        self.path.mkdir(parents=True)

    def add_features(self, extractor: FeatureExtractor) -> dict[str, Any]:
        from safetensors.numpy import save_file

        (self.path / "features").mkdir(exist_ok=True)
        state = {k: np.ascontiguousarray(v) for k, v in extractor.get_state().items()}
        save_file(state, str(self.path / "features/state.safetensors"))
        return {"kind": extractor.kind, "params": extractor.get_params()}

    def add_clustering(self, model: ClusterModel) -> None:
        from safetensors.numpy import save_file

        (self.path / "clustering").mkdir(exist_ok=True)
        save_file(model.get_state(), str(self.path / "clustering/state.safetensors"))

    def add_models(
        self,
        target: Target,
        generator: Generator,
        discriminator: Discriminator,
        encoder: torch.nn.Module | None = None,
        encoder_config: dict | None = None,
        samples_png: bytes | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        name = target_name(target)
        folder = self.path / "models" / name
        save_module(generator, folder / "generator.safetensors")
        save_module(discriminator, folder / "discriminator.safetensors")
        if encoder is not None:
            save_module(encoder, folder / "encoder.safetensors")
        if samples_png is not None:
            (folder / "samples.png").write_bytes(samples_png)
        self.models[name] = {
            "dcgan": generator.config.to_dict(),
            "encoder": encoder_config if encoder is not None else None,
            **(info or {}),
        }

    def finish(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Write the manifest with every file's sha256; the last file written into staging."""
        files = {
            p.relative_to(self.path).as_posix(): sha256_file(p)
            for p in sorted(self.path.rglob("*"))
            if p.is_file()
        }
        full = {"format": FORMAT_VERSION, "version": self.version, **manifest}
        full["models"] = self.models
        full["files"] = files
        write_json_atomic(self.path / MANIFEST, full)
        return full
