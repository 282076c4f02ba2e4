import numpy as np
import pytest

from restauro.clustering import ClusterModel, fit_clusters
from restauro.errors import DatasetError


def blobs(sizes, dim=6, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 5, size=(len(sizes), dim))
    x = np.concatenate(
        [c + rng.normal(0, spread, (n, dim)) for c, n in zip(centers, sizes, strict=True)]
    )
    y = np.concatenate([[i] * n for i, n in enumerate(sizes)])
    return x, y


def test_auto_k_finds_well_separated_groups():
    x, y = blobs([30, 30, 30])
    model, _, report = fit_clusters(x, None, k_range=range(2, 7), labels=[str(v) for v in y])
    assert report.k == 3 and model.k == 3
    assert report.adjusted_rand_index == pytest.approx(1.0)
    assert set(report.silhouette_by_k) == {2, 3, 4, 5, 6}


def test_small_clusters_are_filled_up_to_the_minimum():
    x, _ = blobs([100, 100, 4], seed=1)
    _, labels, report = fit_clusters(x, 3, min_fraction=0.5)
    sizes = np.bincount(labels, minlength=3)
    assert sizes.min() >= report.min_size == int(0.5 * 204 / 3)
    assert report.moved > 0 and sum(report.sizes) == 204


def test_without_balancing_the_tiny_cluster_stays_tiny():
    # The check above must be able to fail: with min_fraction 0 nothing is moved.
    x, _ = blobs([100, 100, 4], seed=1)
    _, labels, report = fit_clusters(x, 3, min_fraction=0.0)
    assert report.moved == 0 and np.bincount(labels).min() == 4


def test_state_round_trip_and_routing_agree():
    x, _ = blobs([20, 25, 30], seed=2)
    model, labels, _ = fit_clusters(x, 3, pca_components=4)
    again = ClusterModel.from_state(model.get_state())
    assert np.array_equal(again.assign(x), model.assign(x))
    assert np.allclose(again.distances(x[:5]), model.distances(x[:5]))
    assert (model.assign(x) == labels).mean() > 0.95


def test_more_clusters_than_paintings():
    x, _ = blobs([3])
    with pytest.raises(DatasetError, match="cannot make 5 clusters from 3"):
        fit_clusters(x, 5)
