"""Transferability measured by training on the target: the linear probe (METHOD 5.1).

The probe is a new linear softmax head on frozen, standardised target features, trained with the
same gradient-norm penalty as the reference classifier h_R so that its loss is comparable with the
bound; its target-test cross-entropy is "the actual transferability" of notebook 03.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.preprocessing import StandardScaler

from .reference_classifier import ReferenceClassifier, train_reference_classifier


@dataclass
class ProbeResult:
    """Target-test cross-entropy (mean, natural log) and accuracy of a linear probe."""

    cross_entropy: float
    accuracy: float
    classifier: ReferenceClassifier
    scaler: StandardScaler


def linear_probe(train, test, n_classes: int | None = None, *, scale: str = "small", seed: int = 0,
                 **options) -> ProbeResult:
    """Fit ``softmax(W s_T(z) + c)`` on ``train = (Z, y)`` and score it on ``test = (Z, y)``.

    ``s_T`` standardises with the train statistics (METHOD 1.3). ``options`` are those of
    :func:`~taskrel_utils.reference_classifier.train_reference_classifier` (tau0, iterations, ...).
    """
    (Z, y), (Z_te, y_te) = train, test
    scaler = StandardScaler().fit(np.asarray(Z, dtype=np.float64))
    X, X_te = scaler.transform(Z), scaler.transform(Z_te)
    clf = train_reference_classifier(X, y, n_classes, scale=scale, seed=seed, **options)
    y_te = np.asarray(y_te)
    return ProbeResult(cross_entropy=float(clf.cross_entropy(X_te, y_te).mean()),
                       accuracy=clf.accuracy(X_te, y_te), classifier=clf, scaler=scaler)
