"""Bag of visual words: many local descriptors per image -> one fixed-length vector.

The vocabulary is K-means over a seeded sample of the collection's descriptors (MiniBatchKMeans:
the full set runs to hundreds of thousands of descriptors). Each image becomes a histogram of
hard-assigned words, TF-IDF weighted so that words every painting has (flat canvas texture) count
less than distinctive ones, then L2-normalized so images with many keypoints do not dominate.
The state is two arrays, so a bundle needs no pickled sklearn object.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from threadpoolctl import threadpool_limits

from restauro.errors import DatasetError

_ASSIGN_CHUNK = 4096


class BagOfWords:
    """A visual vocabulary with inverse document frequencies."""

    def __init__(self, vocabulary: np.ndarray, idf: np.ndarray) -> None:
        self.vocabulary = np.ascontiguousarray(vocabulary, dtype=np.float32)
        self.idf = np.ascontiguousarray(idf, dtype=np.float32)
        if self.vocabulary.ndim != 2 or self.idf.shape != (self.vocabulary.shape[0],):
            raise ValueError(
                f"vocabulary {self.vocabulary.shape} and idf {self.idf.shape} do not agree"
            )
        self._sq_norms = (self.vocabulary.astype(np.float64) ** 2).sum(axis=1)

    @property
    def size(self) -> int:
        return self.vocabulary.shape[0]

    @classmethod
    def fit(
        cls,
        descriptor_sets: Sequence[np.ndarray],
        vocab_size: int = 256,
        sample_cap: int = 100_000,
        seed: int = 0,
    ) -> BagOfWords:
        """Learn the vocabulary from a sample of all descriptors, then idf from every image.

        With fewer distinct descriptors than ``vocab_size`` the vocabulary is smaller (a tiny
        collection still yields a usable, if coarse, vocabulary).
        """
        non_empty = [d for d in descriptor_sets if len(d)]
        if not non_empty:
            raise DatasetError("no local descriptors found in any image: cannot learn a vocabulary")
        all_desc = np.concatenate(non_empty).astype(np.float32, copy=False)
        rng = np.random.default_rng(seed)
        if len(all_desc) > sample_cap:
            all_desc = all_desc[np.sort(rng.choice(len(all_desc), sample_cap, replace=False))]
        distinct = len(np.unique(all_desc, axis=0))
        k = max(1, min(vocab_size, distinct))
        # One thread: minibatches are too small for OpenMP to pay off, and on a busy machine
        # oversubscribed threads made this 7x slower (measured on the 2-core dev machine).
        with threadpool_limits(1):
            kmeans = MiniBatchKMeans(
                n_clusters=k,
                random_state=seed,
                n_init=1,
                batch_size=max(1024, 3 * k),
                max_iter=100,
            ).fit(all_desc)
        vocab = cls(kmeans.cluster_centers_, np.ones(k, dtype=np.float32))
        counts = vocab.counts(descriptor_sets)
        doc_freq = (counts > 0).sum(axis=0)
        n_docs = len(descriptor_sets)
        # Smoothed idf (as sklearn's TfidfTransformer): a word in every image keeps weight 1.
        vocab.idf = (np.log((1.0 + n_docs) / (1.0 + doc_freq)) + 1.0).astype(np.float32)
        return vocab

    def assign(self, descriptors: np.ndarray) -> np.ndarray:
        """Index of the nearest word (Euclidean) for each descriptor."""
        desc = np.asarray(descriptors, dtype=np.float32)
        out = np.empty(len(desc), dtype=np.intp)
        for start in range(0, len(desc), _ASSIGN_CHUNK):
            chunk = desc[start : start + _ASSIGN_CHUNK].astype(np.float64)
            dist = self._sq_norms[None, :] - 2.0 * (chunk @ self.vocabulary.T.astype(np.float64))
            out[start : start + _ASSIGN_CHUNK] = np.argmin(dist, axis=1)
        return out

    def counts(self, descriptor_sets: Sequence[np.ndarray]) -> np.ndarray:
        """(N, K) raw word counts."""
        counts = np.zeros((len(descriptor_sets), self.size), dtype=np.float64)
        for i, desc in enumerate(descriptor_sets):
            if len(desc):
                counts[i] = np.bincount(self.assign(desc), minlength=self.size)
        return counts

    def transform(self, descriptor_sets: Sequence[np.ndarray]) -> np.ndarray:
        """(N, K) float32 TF-IDF histograms of unit L2 norm (all zeros for an image without
        descriptors)."""
        counts = self.counts(descriptor_sets)
        n_desc = counts.sum(axis=1, keepdims=True)
        tf = np.divide(counts, n_desc, out=np.zeros_like(counts), where=n_desc > 0)
        weighted = tf * self.idf.astype(np.float64)
        norm = np.linalg.norm(weighted, axis=1, keepdims=True)
        hist = np.divide(weighted, norm, out=np.zeros_like(weighted), where=norm > 0)
        return hist.astype(np.float32)

    def get_state(self, prefix: str = "bow.") -> dict[str, np.ndarray]:
        return {f"{prefix}vocabulary": self.vocabulary, f"{prefix}idf": self.idf}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], prefix: str = "bow.") -> BagOfWords:
        return cls(state[f"{prefix}vocabulary"], state[f"{prefix}idf"])
