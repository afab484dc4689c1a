"""Fixtures shared by the unit tests of the analysis modules (experiment, controls, fits, tables)."""
import numpy as np
import pytest


@pytest.fixture(scope="module")
def feats():
    """Features of one encoder ``e`` on a 4-class reference ``ref`` and a 4-class target ``tgt``
    (12-d Gaussian blobs, the target shifted by 1): ``{(encoder, task, split): (Z, y)}``."""
    rng = np.random.default_rng(0)

    def blobs(n, d, k, shift):
        y = np.arange(n) % k
        return rng.normal(size=(n, d)) + 4 * np.eye(k, d)[y] + shift, y

    return {("e", "ref", "train"): blobs(200, 12, 4, 0.0), ("e", "ref", "test"): blobs(80, 12, 4, 0.0),
            ("e", "tgt", "train"): blobs(160, 12, 4, 1.0), ("e", "tgt", "test"): blobs(80, 12, 4, 1.0)}
