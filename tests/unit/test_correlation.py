import numpy as np
import pytest

from taskrel_utils import correlation
from taskrel_utils.errors import TaskrelError


def naive_pearson(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    xc, yc = x - x.mean(), y - y.mean()
    return (xc * yc).sum() / np.sqrt((xc ** 2).sum() * (yc ** 2).sum())


def test_pearson_matches_the_definition_and_is_affine_invariant():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=20), rng.normal(size=20)
    assert correlation.pearson(x, y) == pytest.approx(naive_pearson(x, y), abs=1e-12)
    assert correlation.pearson(3 * x + 1, y) == pytest.approx(correlation.pearson(x, y), abs=1e-12)
    assert correlation.pearson(x, -y) == pytest.approx(-correlation.pearson(x, y), abs=1e-12)
    assert correlation.pearson(x, 2 * x - 5) == pytest.approx(1.0)


def test_spearman_is_rank_based():
    x = np.arange(10.0)
    assert correlation.spearman(x, np.exp(x)) == pytest.approx(1.0)
    assert correlation.pearson(x, np.exp(x)) < 0.9


@pytest.mark.parametrize("x,y,msg", [([1, 2], [1, 2], "at least 3"), ([1, 2, 3], [1, 2], "same length"),
                                     ([1, 2, np.nan], [1, 2, 3], "finite"), ([1, 1, 1], [1, 2, 3], "constant")])
def test_errors(x, y, msg):
    with pytest.raises(TaskrelError, match=msg):
        correlation.pearson(x, y)
