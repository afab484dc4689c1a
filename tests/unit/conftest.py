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


@pytest.fixture(scope="module")
def small_pair():
    """A small planted pair (test_relatedness.planted, 40 train / 20 test points per class):
    ``(R, R_te, T, T_te)``, each ``(Z, y)``; for the fit's hand-run steps and their inspection."""
    from test_relatedness import planted

    R, R_te, T, T_te, _, _ = planted(n_tr=40, n_te=20)
    return R, R_te, T, T_te


@pytest.fixture(scope="module")
def small_h_R(small_pair):
    """h_R of :func:`small_pair`'s reference (tau0 1.0, at most 60 iterations)."""
    from taskrel_utils.method.reference_classifier import fit_reference_model

    return fit_reference_model(small_pair[0], small_pair[1], seed=0, options=dict(tau0=1.0, iterations=60))[1]
