"""The paper-original profile runs the authors' recipe exactly: its fit is the original schedule
(random B, A = I, b = 0, Adam on every parameter, exactly 2,001 steps), its h_R the original SGD
(lr 1e-4, momentum 0.9, weight decay 5e-4, batch 1,000, exactly 2,001 iterations, penalty 1e4,
tau0 0.02), one OT batch of 1,000 for the whole zoo, a uniform reference pool, the ImageNet head."""
import numpy as np
import pytest
import torch

from taskrel_utils.method import fit_steps
from taskrel_utils.study import config, experiment
from taskrel_utils.method.fit_options import encoder_fit_options, resolve_options
from taskrel_utils.method.reference_classifier import ORIGINAL_OPTIMISER
from taskrel_utils.method.relatedness import task_relatedness


@pytest.fixture(scope="module")
def profile():
    return config.load_profile("paper-original")


def _resolved(profile, encoder="timm:resnet50.tv_in1k", width=2048):
    opts = encoder_fit_options(profile.relatedness, encoder, width)
    scale, schedule = opts.pop("scale"), opts.pop("schedule")
    return scale, schedule, resolve_options(scale, schedule, opts)


@pytest.mark.parametrize("encoder, width", [("timm:resnet50.tv_in1k", 2048), ("torchvision:mobilenet_v2", 1280),
                                            ("timm:resnet34.tv_in1k", 512)])
def test_the_profile_resolves_to_the_authors_values(profile, encoder, width):
    scale, schedule, o = _resolved(profile, encoder, width)
    assert (scale, schedule) == ("large", "reference")
    assert o["batch_size"] == 1000  # one OT batch for the zoo, whatever the width
    assert (o["steps"], o["stop"], o["b_init"], o["a_init"], o["update"]) == (2001, "fixed", "random", "identity", "adam")
    assert (o["Lambda"], o["lambda_wd"], o["lambda_pm"], o["lambda_ic"]) == (1e6, 2.0, 1.0, 1.0)
    assert (o["lr"], o["lr_delta"], o["reweighted_loss"], o["adam_eps"]) == (1e-2, 1e-3, "pool", 1e-7)
    h = o["reference_classifier_options"]
    assert {k: h[k] for k in ORIGINAL_OPTIMISER} == ORIGINAL_OPTIMISER
    assert (h["tau0"], h["penalty_weight"]) == (0.02, 1e4)


def test_the_profile_draws_its_pool_uniformly_and_uses_the_imagenet_head(profile):
    assert profile.reference_pool == 10000 and profile.reference_pool_draw == "uniform"
    assert profile.source_classifier == "imagenet_head" and profile.use_published
    assert profile.task_options["imagenet"]["max_images"] is None  # all train images of the drawn classes
    y = np.repeat(np.arange(4), [500, 300, 150, 50])
    keep = experiment.reference_pool_indices(y, 200, "uniform", seed=0)
    counts = np.bincount(y[keep], minlength=4)
    assert len(keep) == len(np.unique(keep)) == 200 and counts.sum() == 200
    assert counts[0] > counts[3] * 3  # proportional to the classes' sizes, not even
    assert list(np.bincount(y[experiment.reference_pool_indices(y, 200, "stratified")], minlength=4)) == [50] * 4
    with pytest.raises(Exception, match="reference_pool_draw must be one of stratified, uniform"):
        config.load_profile("paper-original", reference_pool_draw="even")


def test_a_fit_with_the_profile_options_takes_exactly_2001_adam_steps_from_the_identity(profile, monkeypatch):
    rng = np.random.default_rng(0)
    d, K = 6, 3
    mu = rng.normal(size=(K, d)) * 3

    def draw(n):
        y = np.repeat(np.arange(K), n)
        return mu[y] + rng.normal(size=(len(y), d)), y

    data = [draw(n) for n in (40, 20, 40, 20)]
    opts = encoder_fit_options(profile.relatedness, "timm:x", d)
    opts.update(batch_size=60)  # the tiny pools: every step's batches stay within them

    starts, steps, sgd_steps = [], [0], [0]
    real_start, real_adam, real_sgd = fit_steps.start_fit, torch.optim.Adam.step, torch.optim.SGD.step

    def spy_start(state, start):
        starts.append(start)
        return real_start(state, start)

    def adam_step(self, *a, **k):
        steps[0] += 1
        return real_adam(self, *a, **k)

    def sgd_step(self, *a, **k):
        sgd_steps[0] += 1
        return real_sgd(self, *a, **k)

    monkeypatch.setattr(fit_steps, "start_fit", spy_start)
    monkeypatch.setattr(torch.optim.Adam, "step", adam_step)
    monkeypatch.setattr(torch.optim.SGD, "step", sgd_step)
    res = task_relatedness(*data, seed=0, log_every=0, **opts)
    assert steps[0] == 2001 and res.terms["steps_used"] == 2001 and not res.terms["converged"]
    assert sgd_steps[0] == 2001 and res.reference_classifier.fit_info["iterations"] == 2001  # h_R: the SGD recipe
    (start,) = starts
    assert np.array_equal(start.A, np.eye(d)) and np.array_equal(start.A_inv, np.eye(d)) and not start.b.any()
    assert start.beta.shape == (K, K) and 0 <= start.beta.min() and start.beta.max() < 1  # U[0, 1) logits
    assert len(np.unique(start.beta)) == K * K  # random, not the class-means start
    assert res.options["schedule"] == "reference" and res.reference_classifier.options["optimizer"] == "sgd"
