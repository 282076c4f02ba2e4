"""The offline pipeline: a folder of paintings -> features -> clusters -> DCGANs -> a bundle.

This is an adapter: each step is a core call (``restauro.dataset``, ``restauro.features``,
``restauro.clustering``, ``restauro.gan_training``, ``restauro.registry``); this module only
orders them, keeps per-model checkpoints in a run folder so an interrupted run can resume, and
publishes the bundle atomically at the end.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from restauro.bundle import GENERAL, Bundle, BundleWriter, target_name
from restauro.clustering import fit_clusters
from restauro.dataset import Dataset, ingest, is_validation
from restauro.dcgan import DCGANConfig
from restauro.errors import DatasetError, InvalidParameter
from restauro.features import create_extractor
from restauro.gan_checkpoints import read_checkpoint_state
from restauro.gan_training import InitialWeights, TrainResult, TrainSettings, train_dcgan
from restauro.progress import Progress, report
from restauro.registry import Registry

RUNS = ".runs"
LOCAL_KINDS = ("sift", "surf")


@dataclass
class TrainOptions:
    images: Path
    registry: Path
    features: str = "sift"
    clusters: int | None = 4  # None = choose by silhouette
    image_size: int = 64
    epochs: int = 5
    checkpoint_every: int = 1  # epochs between DCGAN checkpoints + sample grids (the last: always)
    batch_size: int = 64
    max_images: int | None = None
    device: str = "cpu"
    seed: int = 0
    weights: Path | None = None  # CNN backbone weights file (vgg16, squeezenet)
    vocabulary: int = 256  # bag-of-words size (sift, surf)
    pca: int | None = None
    min_cluster_fraction: float = 0.5
    validation_fraction: float = 0.1
    ngf: int = 64
    ndf: int = 64
    nz: int = 100
    # data-efficient cluster GANs (issue 8); each is recorded in the manifest's "training"
    iterations: int | None = None  # gradient steps per DCGAN (rounded to whole epochs): no epochs
    init_from_general: bool = True  # train general first, fine-tune each cluster GAN from it
    crops: int = 0  # random zoomed-in squares per painting, besides its centre square
    crop_zoom: float = 4.0  # crops zoom in 1 to this many times (the windows of large scans)
    spectral_norm: bool = False  # spectral normalisation in D (instead of its batch norm)
    ema: float = 0.995  # decay of the EMA of G's weights; the bundle ships the EMA G (0 = off)
    diffaugment: str = ""  # DiffAugment policy on D's inputs, e.g. "color,translation,cutout"
    encoder: bool = False
    encoder_epochs: int = 5
    encoder_steps_per_epoch: int = 100
    only_cluster: int | None = None  # retrain one cluster of the current bundle
    resume: bool = False
    promote: bool = True
    version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def dcgan_config(self) -> DCGANConfig:
        return DCGANConfig(
            self.image_size, self.nz, self.ngf, self.ndf, spectral_norm=self.spectral_norm
        )

    def train_settings(self) -> TrainSettings:
        return TrainSettings(
            epochs=self.epochs,
            iterations=self.iterations,
            checkpoint_every=self.checkpoint_every,
            batch_size=self.batch_size,
            seed=self.seed,
            device=self.device,
            ema=self.ema,
            diffaugment=self.diffaugment,
        )

    def run_key(self) -> str:
        """Runs with the same data and settings share a run folder, which is what resume finds."""
        keys = (
            "features",
            "clusters",
            "image_size",
            "batch_size",
            "max_images",
            "seed",
            "vocabulary",
            "pca",
            "ngf",
            "ndf",
            "nz",
            "only_cluster",
        )
        values: list[Any] = [str(self.images.resolve())] + [getattr(self, k) for k in keys]
        # Options added later join the key only when set, so older runs keep their folder.
        for name in ("init_from_general", "spectral_norm", "ema", "diffaugment", "crops"):
            value = getattr(self, name)
            if value:
                values.append([name, value])
        if self.crops:
            values.append(["crop_zoom", self.crop_zoom])
        blob = json.dumps(values)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


@dataclass
class TrainOutcome:
    version: str
    manifest: dict[str, Any]
    dataset: Dataset
    promoted: bool


def run_training(options: TrainOptions, progress: Progress | None = None) -> TrainOutcome:
    """Train and publish a bundle; returns its version. Nothing is published if any step fails."""
    _check(options)
    registry = Registry(options.registry)
    base = registry.load() if options.only_cluster is not None else None
    dataset = ingest(options.images, options.max_images, options.seed, progress=progress)
    train_idx = [
        i
        for i, p in enumerate(dataset.paintings)
        if not is_validation(p.path, options.validation_fraction)
    ]
    if not train_idx:
        raise DatasetError("every painting fell into the validation split; lower it")
    train_set = dataset.subset(train_idx)
    run_dir = options.registry / RUNS / options.run_key()
    if not options.resume and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    if base is None:
        extractor, cluster_model, assignment, clustering = _features_and_clusters(
            options, train_set, progress
        )
    else:
        extractor, cluster_model = base.extractor, base.cluster_model
        assignment, clustering = _assignment_from_base(base, train_set, progress)

    config = options.dcgan_config()
    settings = options.train_settings()
    k = cluster_model.k
    # The general GAN first: with init_from_general every cluster GAN starts from it.
    targets: list[int | str] = [GENERAL, *range(k)]
    init: InitialWeights | None = None
    if base is not None:
        targets = [options.only_cluster]
        if options.init_from_general:  # the base bundle's general GAN, as published
            general = base.models(GENERAL, options.device)
            init = InitialWeights.from_nets(general.generator, general.discriminator)
    all_images = train_set.training_images(
        options.image_size, options.crops, options.crop_zoom, options.seed
    )
    assignment_of_views = np.repeat(assignment, 1 + options.crops)  # a crop is its painting's

    with registry.publishing(options.version) as writer:
        if base is None:
            features_info = writer.add_features(extractor)
            writer.add_clustering(cluster_model)
        else:
            features_info = base.manifest["features"]
            _copy_routing_state(base, writer)
        for target in targets:
            images = all_images if target == GENERAL else all_images[assignment_of_views == target]
            result = _train_target(
                options,
                writer,
                target,
                images,
                config,
                settings,
                run_dir,
                progress,
                init=None if target == GENERAL else init,
            )
            if target == GENERAL and options.init_from_general:
                init = InitialWeights.from_nets(result.inference_generator, result.discriminator)
        if base is not None:
            for name in base.manifest["models"]:
                if name != target_name(options.only_cluster):
                    _copy_model(base, writer, name)
        members = {p.path: int(c) for p, c in zip(train_set.paintings, assignment, strict=True)}
        _write_members(writer, members)
        report(progress, "publish", 0, 1)
        manifest = writer.finish(
            _manifest(options, dataset, train_set, features_info, assignment, clustering, base)
        )
    promoted = options.promote
    if promoted:
        registry.promote(manifest["version"])
    report(progress, "publish", 1, 1)
    return TrainOutcome(manifest["version"], manifest, dataset, promoted)


def _check(options: TrainOptions) -> None:
    options.dcgan_config()
    for name in ("epochs", "batch_size", "checkpoint_every"):
        if getattr(options, name) < 1:
            raise InvalidParameter(f"--{name.replace('_', '-')} must be at least 1")
    if options.iterations is not None and options.iterations < 1:
        raise InvalidParameter("--iterations must be at least 1")
    if options.crops < 0:
        raise InvalidParameter("--crops must be 0 or more")
    if not options.crop_zoom >= 1:
        raise InvalidParameter("--crop-zoom must be at least 1")
    options.train_settings()  # --ema, --diffaugment: refused before hours of work, not after
    if options.clusters is not None and options.clusters < 1:
        raise InvalidParameter("--clusters must be a positive number or 'auto'")
    if options.max_images is not None and options.max_images < 1:
        raise InvalidParameter("--max-images must be at least 1")
    if not 0 <= options.validation_fraction < 1:
        raise InvalidParameter("--validation-fraction must lie in [0, 1)")
    if options.only_cluster is not None and options.only_cluster < 0:
        raise InvalidParameter("--only-cluster must be a cluster id (0, 1, ...)")


def _features_and_clusters(options: TrainOptions, train_set: Dataset, progress: Progress | None):
    params: dict[str, Any] = {}
    if options.features in LOCAL_KINDS:
        params["vocab_size"] = options.vocabulary
        params["seed"] = options.seed
    elif options.weights is not None:
        params["weights"] = options.weights
    extractor = create_extractor(options.features, **params)
    if options.device != "cpu":
        extractor = extractor.to(options.device)
    images = [p.rgb for p in train_set.paintings]
    if options.clusters is not None and options.clusters > len(images):
        raise DatasetError(
            f"--clusters {options.clusters} is more than the {len(images)} training paintings"
        )
    features = extractor.fit_transform(images, progress=progress)
    report(progress, "clustering", 0, 1)
    cluster_model, assignment, clustering = fit_clusters(
        features,
        options.clusters,
        min_fraction=options.min_cluster_fraction,
        pca_components=options.pca,
        seed=options.seed,
        labels=train_set.labels,
    )
    report(progress, "clustering", 1, 1)
    return extractor, cluster_model, assignment, clustering.to_dict()


def _assignment_from_base(base: Bundle, train_set: Dataset, progress: Progress | None):
    """Reuse the clusters the base bundle was trained with; route paintings it never saw."""
    members = json.loads((base.path / "clustering/members.json").read_text())
    unknown = [i for i, p in enumerate(train_set.paintings) if p.path not in members]
    assignment = np.array([members.get(p.path, -1) for p in train_set.paintings], np.int64)
    if unknown:
        feats = base.extractor.transform(
            [train_set.paintings[i].rgb for i in unknown], progress=progress
        )
        assignment[unknown] = base.cluster_model.assign(feats)
    return assignment, base.manifest["clustering"]


def _train_target(
    options: TrainOptions,
    writer: BundleWriter,
    target: int | str,
    images: np.ndarray,
    config: DCGANConfig,
    settings: TrainSettings,
    run_dir: Path,
    progress: Progress | None,
    init: InitialWeights | None = None,
) -> TrainResult:
    """Train one target's DCGAN (from ``init`` when given) and add its nets to the bundle.

    The bundle gets the inference generator (the EMA one when ``ema`` > 0) and D.
    """
    name = target_name(target)
    if len(images) == 0:
        raise DatasetError(f"{name} has no training paintings")
    workdir = run_dir / name
    restarted = options.resume and _restart_if_start_moved(workdir, init)
    result = train_dcgan(
        images,
        config,
        replace(settings, name=name),  # progress stage "train c3"
        workdir=workdir,
        resume=options.resume,
        progress=progress,
        init=init,
    )
    generator = result.inference_generator
    encoder = encoder_config = None
    if options.encoder:
        from restauro.encoder import EncoderSettings, train_encoder

        enc = train_encoder(
            generator,
            images,
            settings=EncoderSettings(
                epochs=options.encoder_epochs,
                steps_per_epoch=options.encoder_steps_per_epoch,
                batch_size=options.batch_size,
                seed=options.seed,
                device=options.device,
                name=f"encoder {name}",
            ),
            progress=progress,
        )
        encoder, encoder_config = enc.encoder, enc.encoder.config.to_dict()
    samples = sorted((workdir / "samples").glob("*.png"))
    writer.add_models(
        target,
        generator,
        result.discriminator,
        encoder=encoder,
        encoder_config=encoder_config,
        samples_png=samples[-1].read_bytes() if samples else None,
        info={
            "size": len(images),
            "epochs": result.epochs_done,
            "steps": result.steps,
            "ema": settings.ema or None,  # the generator file is the EMA generator
            "diffaugment": settings.diffaugment or None,
            "spectral_norm": config.spectral_norm,
            "init": "general" if init is not None else None,
            "restarted": restarted or None,  # resumed run whose starting point had moved
            "history": result.history,
        },
    )
    return result


def _restart_if_start_moved(workdir: Path, init: InitialWeights | None) -> bool:
    """Clear a fine-tuning checkpoint whose starting weights are no longer ``init``; True if so.

    A cluster GAN fine-tuned from the general GAN started from that GAN as it was. When a resumed
    run trains the general GAN further (more epochs or iterations), the cluster checkpoints belong
    to a starting point that no longer exists: continuing them would ship a bundle whose clusters
    were not fine-tuned from its own general GAN, so they are trained again from the new one.
    """
    state = read_checkpoint_state(workdir)
    if state is None:
        return False
    wanted = init.fingerprint() if init is not None else None
    if state.get("init_sha256") == wanted:
        return False
    shutil.rmtree(workdir)
    return True


def _copy_routing_state(base: Bundle, writer: BundleWriter) -> None:
    for folder in ("features", "clustering"):
        shutil.copytree(base.path / folder, writer.path / folder, dirs_exist_ok=True)


def _copy_model(base: Bundle, writer: BundleWriter, name: str) -> None:
    shutil.copytree(base.path / "models" / name, writer.path / "models" / name)
    writer.models[name] = base.manifest["models"][name]


def _write_members(writer: BundleWriter, members: dict[str, int]) -> None:
    (writer.path / "clustering").mkdir(exist_ok=True)
    (writer.path / "clustering/members.json").write_text(json.dumps(members, indent=0))


def _manifest(options, dataset, train_set, features_info, assignment, clustering, base) -> dict:
    k = int(assignment.max()) + 1 if base is None else len(base.manifest["clusters"])
    sizes = np.bincount(assignment[assignment >= 0], minlength=k)
    training = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in asdict(options).items()
        if k not in ("registry", "extra")
    }
    return {
        "created": datetime.now(UTC).isoformat(),
        "parent": base.version if base is not None else None,
        "features": features_info,
        "image_size": options.image_size,
        "clusters": [{"id": c, "size": int(sizes[c])} for c in range(k)],
        "general": {"size": len(train_set)},
        "clustering": clustering,
        "training": training,
        "dataset": {
            **dataset.summary(),
            "training": len(train_set),
            "validation": sorted(
                {p.path for p in dataset.paintings} - {p.path for p in train_set.paintings}
            ),
        },
    }
