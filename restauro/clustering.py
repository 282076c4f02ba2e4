"""Clustering paintings into visually coherent groups of even size.

Features are standardized (every dimension on the same footing), optionally PCA-reduced, and
clustered with K-means. The paper trains one DCGAN per cluster, so a cluster of twelve paintings
would get a GAN that has seen nothing: clusters are rebalanced until none is under a minimum size.
Routing a new image is "nearest centroid" in the same reduced space.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, silhouette_score

from restauro.errors import DatasetError, InvalidParameter


@dataclass
class ClusterModel:
    """Everything needed to place a feature vector into a cluster, as plain arrays."""

    mean: np.ndarray  # (D,) standardization
    scale: np.ndarray  # (D,)
    centroids: np.ndarray  # (K, D') in the reduced space
    pca_mean: np.ndarray | None = None  # (D,)
    pca_components: np.ndarray | None = None  # (D', D)

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    def reduce(self, features: np.ndarray) -> np.ndarray:
        z = (np.asarray(features, np.float64) - self.mean) / self.scale
        if self.pca_components is not None:
            z = (z - self.pca_mean) @ self.pca_components.T
        return z

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Euclidean distance of each row to each centroid, ``N x K``."""
        z = self.reduce(features)
        return np.sqrt(((z[:, None, :] - self.centroids[None, :, :]) ** 2).sum(-1))

    def assign(self, features: np.ndarray) -> np.ndarray:
        return self.distances(features).argmin(1)

    def get_state(self) -> dict[str, np.ndarray]:
        state = {"mean": self.mean, "scale": self.scale, "centroids": self.centroids}
        if self.pca_components is not None:
            state |= {"pca_mean": self.pca_mean, "pca_components": self.pca_components}
        return {k: np.ascontiguousarray(v, np.float64) for k, v in state.items()}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> ClusterModel:
        return cls(
            mean=state["mean"],
            scale=state["scale"],
            centroids=state["centroids"],
            pca_mean=state.get("pca_mean"),
            pca_components=state.get("pca_components"),
        )


@dataclass
class ClusteringReport:
    k: int
    sizes: list[int]
    min_size: int
    moved: int  # paintings reassigned by balancing
    silhouette: float | None
    silhouette_by_k: dict[int, float] = field(default_factory=dict)
    adjusted_rand_index: float | None = None  # agreement with labels (styles), where known

    def to_dict(self) -> dict:
        return {
            "k": self.k,
            "sizes": self.sizes,
            "min_size": self.min_size,
            "moved_by_balancing": self.moved,
            "silhouette": self.silhouette,
            "silhouette_by_k": {str(k): v for k, v in self.silhouette_by_k.items()},
            "adjusted_rand_index": self.adjusted_rand_index,
        }


def _kmeans(z: np.ndarray, k: int, seed: int) -> KMeans:
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z)


def choose_k(z: np.ndarray, k_range: range, seed: int) -> tuple[int, dict[int, float]]:
    """The K with the best silhouette (K-means on a few thousand rows is cheap: try them all)."""
    scores: dict[int, float] = {}
    for k in k_range:
        if 2 <= k < len(z):
            labels = _kmeans(z, k, seed).labels_
            if len(set(labels)) > 1:
                scores[k] = float(silhouette_score(z, labels, random_state=seed))
    if not scores:
        raise DatasetError(f"too few paintings ({len(z)}) to choose a number of clusters")
    return max(scores, key=scores.__getitem__), scores


def balance(z: np.ndarray, labels: np.ndarray, centroids: np.ndarray, min_size: int) -> int:
    """Move paintings into clusters below ``min_size`` until none is, in place.

    Each move takes, from a cluster that can spare one, the painting that loses least by moving:
    the smallest increase of its distance to a centroid. Returns how many were moved.
    """
    k = len(centroids)
    dist = np.sqrt(((z[:, None, :] - centroids[None]) ** 2).sum(-1))
    moved = 0
    while True:
        sizes = np.bincount(labels, minlength=k)
        small = int(sizes.argmin())
        if sizes[small] >= min_size:
            return moved
        donors = sizes[labels] > min_size
        cost = np.where(donors, dist[:, small] - dist[np.arange(len(z)), labels], np.inf)
        best = int(cost.argmin())
        if not np.isfinite(cost[best]):  # pragma: no cover - impossible when k * min_size <= n
            return moved
        labels[best] = small
        moved += 1


def fit_clusters(
    features: np.ndarray,
    k: int | None,
    *,
    k_range: range = range(2, 9),
    min_fraction: float = 0.5,
    pca_components: int | None = None,
    seed: int = 0,
    labels: list[str | None] | None = None,
) -> tuple[ClusterModel, np.ndarray, ClusteringReport]:
    """Cluster ``features`` (N x D) into ``k`` groups (``None`` = choose by silhouette).

    ``min_fraction`` sets the minimum size as a fraction of the even share N / K.
    """
    features = np.asarray(features, np.float64)
    n = len(features)
    if k is not None and not 1 <= k <= n:
        raise DatasetError(f"cannot make {k} clusters from {n} paintings")
    if not 0 <= min_fraction <= 1:
        raise InvalidParameter("min_fraction must lie in [0, 1]")
    mean = features.mean(0)
    scale = features.std(0)
    scale[scale < 1e-8] = 1.0  # constant dimensions carry no information; do not divide by 0
    z = (features - mean) / scale
    pca_mean = pca_comp = None
    if pca_components:
        pca = PCA(n_components=min(pca_components, n, z.shape[1]), random_state=seed).fit(z)
        pca_mean, pca_comp = pca.mean_, pca.components_
        z = (z - pca_mean) @ pca_comp.T
    scores: dict[int, float] = {}
    if k is None:
        k, scores = choose_k(z, k_range, seed)
    km = _kmeans(z, k, seed)
    assignment = km.labels_.astype(np.int64).copy()
    min_size = int(np.floor(min_fraction * n / k))
    moved = balance(z, assignment, km.cluster_centers_, min_size)
    # Centroids follow the balanced membership, so routing agrees with what each GAN was trained on.
    centroids = np.stack([z[assignment == c].mean(0) for c in range(k)])
    silhouette = (
        float(silhouette_score(z, assignment, random_state=seed))
        if 1 < k < n and len(set(assignment)) > 1
        else None
    )
    ari = None
    if labels is not None and all(lbl is not None for lbl in labels):
        ari = float(adjusted_rand_score(labels, assignment))
    model = ClusterModel(mean, scale, centroids, pca_mean, pca_comp)
    sizes = np.bincount(assignment, minlength=k).tolist()
    report = ClusteringReport(k, sizes, min_size, moved, silhouette, scores, ari)
    return model, assignment, report
