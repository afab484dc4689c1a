"""The paper-dryrun stand-ins: real on-disk formats read by the kit's loaders, class signal, determinism."""
import hashlib

import numpy as np
import pytest

from taskrel_utils.inputs import data, dryrun
from taskrel_utils.study import config
from taskrel_utils.core.errors import TaskrelError


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    return dryrun.make_dryrun(tmp_path_factory.mktemp("dryrun") / "data", seed=0)


def _digest(folder):
    return hashlib.sha256(b"".join(p.relative_to(folder).as_posix().encode() + p.read_bytes()
                                   for p in sorted(folder.rglob("*")) if p.is_file())).hexdigest()


def test_stand_ins_are_read_by_the_loaders_of_the_paper_profile(stand_ins):
    s = dryrun.SIZES["smoke"]
    sizes = {"pets": (s.pets_classes, s.pets_trainval, s.pets_test),
             "dtd": (s.dtd_classes, 2 * s.dtd_per_split, s.dtd_per_split),
             "aircraft": (s.aircraft_classes, s.aircraft_trainval, s.aircraft_test)}
    for name, (k, n_train, n_test) in sizes.items():
        tr, te = (data.load_task(name, split, root=stand_ins) for split in ("train", "test"))
        assert tr.n_classes == te.n_classes == k
        assert np.array_equal(np.bincount(tr.labels), [n_train] * k) and np.array_equal(np.bincount(te.labels), [n_test] * k)
    ref = data.load_task("imagenet", "test", root=stand_ins / "imagenet")
    assert ref.n_classes == s.imagenet_classes and ref.class_names[:2] == ("tench", "goldfish")
    assert ref.info["wnids"][0] == "n01440764" and len(ref) == s.imagenet_classes * s.imagenet_val
    profile = config.load_profile("paper-dryrun")
    k_t = [sizes[t][0] for t in profile.targets]
    assert profile.task_options["imagenet"]["n_classes"] == max(k_t) <= s.imagenet_classes
    assert profile.task_options["imagenet"]["max_images"] == max(k_t) * -(-profile.reference_pool // min(k_t))


def test_stand_ins_carry_class_signal(stand_ins):
    task = data.load_task("pets", "train", root=stand_ins)
    X = np.stack([np.asarray(task.image(i), np.float64).mean((0, 1)) for i in range(len(task))])  # mean colour
    means = np.stack([X[task.labels == k].mean(0) for k in range(task.n_classes)])
    nearest = np.argmin(((X[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == task.labels).mean() > 0.9


def test_stand_ins_are_deterministic_and_never_overwrite(stand_ins, tmp_path):
    again = dryrun.make_dryrun(tmp_path / "again", seed=0)
    assert _digest(again) == _digest(stand_ins)
    with pytest.raises(TaskrelError, match="already holds"):
        dryrun.make_dryrun(again)
    with pytest.raises(ValueError, match="dry-run size"):
        dryrun.make_dryrun(tmp_path / "x", size="huge")
