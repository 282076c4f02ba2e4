"""Bag of visual words: assignment, TF-IDF weighting, normalization."""

from __future__ import annotations

import numpy as np
import pytest

from restauro.errors import DatasetError
from restauro.features import BagOfWords

RNG = np.random.default_rng(0)
CENTRES = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]], dtype=np.float32)


def around(word: int, count: int) -> np.ndarray:
    return (CENTRES[word] + RNG.normal(0, 0.3, size=(count, 2))).astype(np.float32)


def word_of(bow: BagOfWords, centre: int) -> int:
    return int(bow.assign(CENTRES[centre : centre + 1])[0])


def test_histograms_have_unit_norm_or_are_zero_when_empty() -> None:
    sets = [np.concatenate([around(0, 10), around(i % 4, 5)]) for i in range(6)]
    bow = BagOfWords.fit(sets, vocab_size=4, seed=0)
    hist = bow.transform([*sets, np.zeros((0, 2), dtype=np.float32)])
    assert hist.shape == (7, 4)
    assert hist.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(hist[:6], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(hist[6], 0.0)


def test_tfidf_downweights_a_word_present_in_every_image() -> None:
    # Word 0 is in every image; word 1 only in the first; both equally frequent there.
    sets = [np.concatenate([around(0, 20), around(1, 20)])]
    sets += [np.concatenate([around(0, 20), around(2 + i % 2, 20)]) for i in range(5)]
    bow = BagOfWords.fit(sets, vocab_size=4, seed=0)
    everywhere, rare = word_of(bow, 0), word_of(bow, 1)
    assert everywhere != rare
    assert bow.idf[everywhere] < bow.idf[rare]
    hist = bow.transform(sets[:1])[0]
    assert hist[everywhere] < 0.6 * hist[rare]


def test_assignment_is_the_nearest_word() -> None:
    data = RNG.normal(size=(500, 16)).astype(np.float32)
    bow = BagOfWords.fit([data], vocab_size=20, seed=1)
    brute = np.argmin(((data[:, None] - bow.vocabulary[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(bow.assign(data), brute)


def test_fitting_is_seeded_and_capped() -> None:
    data = [RNG.normal(size=(3000, 8)).astype(np.float32) for _ in range(3)]
    a = BagOfWords.fit(data, vocab_size=8, sample_cap=2000, seed=3)
    b = BagOfWords.fit(data, vocab_size=8, sample_cap=2000, seed=3)
    np.testing.assert_array_equal(a.vocabulary, b.vocabulary)
    c = BagOfWords.fit(data, vocab_size=8, sample_cap=2000, seed=4)
    assert not np.array_equal(a.vocabulary, c.vocabulary)


def test_a_tiny_collection_gets_a_smaller_vocabulary() -> None:
    bow = BagOfWords.fit([around(0, 1), around(1, 1), around(2, 1)], vocab_size=256)
    assert bow.size == 3


def test_no_descriptors_at_all_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError):
        BagOfWords.fit([np.zeros((0, 64), dtype=np.float32)], vocab_size=4)


def test_state_round_trip() -> None:
    sets = [around(i % 4, 30) for i in range(8)]
    bow = BagOfWords.fit(sets, vocab_size=4)
    again = BagOfWords.from_state(bow.get_state())
    np.testing.assert_array_equal(again.transform(sets), bow.transform(sets))
