import pytest

from taskrel_utils.study import config
from taskrel_utils.core.errors import TaskrelError, UnknownNameError


def test_profiles_listed():
    assert config.list_profiles() == ["mini", "paper", "paper-dryrun", "paper-dryrun-full", "paper-original", "paper-published", "smoke"]


def test_mini_profile_values():
    p = config.load_profile("mini")
    assert p.name == "mini" and p.reference == "fashion-ref"
    assert len(p.targets) >= 4 and len(p.main_encoders) >= 8
    assert {"lenet-random", "lenet-digits"} == set(p.contrasts)
    assert p.premise == {"threshold": 0.05, "random_encoder": "lenet-random"} and "lenet-random" in p.encoders
    assert {"fashion", "fashion-upper", "fashion-noisy"} <= set(p.targets)  # the candidates of the related group
    assert set(p.contrasts) <= set(p.encoders) and p.group("lenet") == "main" and p.group("lenet-random") == "contrast"
    from taskrel_utils.inputs import cnn_zoo
    assert set(p.main_encoders) == set(cnn_zoo.MAIN_ZOO)  # the main zoo shares the reference's source
    assert p.max_per_class("train") is None


def test_smoke_is_small():
    p = config.load_profile("smoke")
    assert p.is_smoke and p.max_per_class("train") == 30 and p.max_per_class("test") == 10
    assert len(p.encoders) <= 4 and len(p.main_encoders) >= 3  # a correlation needs three


def test_contrasts_must_be_encoders():
    with pytest.raises(TaskrelError, match="contrasts"):
        config.load_profile("mini", contrasts=["no-such-encoder"])
    # choosing encoders keeps the contrasts among them
    p = config.load_profile("mini", encoders=["lenet", "lenet-random"])
    assert p.contrasts == ("lenet-random",) and p.main_encoders == ("lenet",)
    assert config.load_profile("mini", encoders="lenet").contrasts == ()


def test_overrides_and_none_keeps_profile_value():
    p = config.load_profile("mini", targets=["fashion"], encoders=None, seed=3)
    assert p.targets == ("fashion",) and p.seed == 3
    assert p.encoders == config.load_profile("mini").encoders
    assert config.load_profile("mini", targets="fashion").targets == ("fashion",)


def test_to_dict_roundtrip_is_json_like():
    d = config.load_profile("smoke").to_dict()
    assert d["name"] == "smoke" and isinstance(d["targets"], list)


def test_unknown_profile_lists_valid_names():
    with pytest.raises(UnknownNameError, match="valid profiles are: mini, paper, paper-dryrun, paper-dryrun-full, paper-original, paper-published, smoke"):
        config.load_profile("huge")


def test_unknown_override_lists_fields():
    with pytest.raises(UnknownNameError, match="'encoder'.*encoders"):
        config.load_profile("mini", encoder=["x"])


@pytest.mark.parametrize("override", [{"targets": []}, {"max_train_per_class": 0},
                                      {"max_test_per_class": -2}, {"seed": "zero"}, {"batch_size": 1.5},
                                      {"use_published": "yes"}, {"device": "gpu"}, {"device": 0},
                                      {"targets": 3}, {"encoders": ["lenet", 3]}, {"contrasts": 3}, {"seed": -1}])
def test_bad_values_are_refused(override):
    with pytest.raises(TaskrelError):
        config.load_profile("mini", **override)


def test_use_published_is_off_unless_the_profile_or_the_notebook_turns_it_on():
    assert config.load_profile("mini").use_published is False
    assert config.load_profile("mini", use_published=None).use_published is False  # None: the profile's
    assert config.load_profile("mini", use_published=True).use_published is True


def test_device_cpu_for_mini_auto_for_the_paper_profiles(monkeypatch):
    """mini and smoke stay on the CPU (their numbers and the shipped ground truth are CPU ones);
    the paper profiles take the GPU when torch sees one; a named GPU that is absent is refused."""
    import torch

    assert config.load_profile("mini").device == "cpu" and config.load_profile("smoke").device == "cpu"
    paper = config.load_profile("paper-dryrun")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert paper.device == "auto" and paper.torch_device == "cuda"
    assert config.load_profile("mini").torch_device == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert paper.torch_device == "cpu"
    with pytest.raises(TaskrelError, match="no GPU.*auto"):
        config.load_profile("mini", device="cuda:1").torch_device


@pytest.mark.parametrize("text, message", [
    ("reference: fashion-ref\ntargets: [fashion\nencoders: [lenet]\n", r"is not valid YAML at line 3, column 9"),
    ("- a list\n- not a mapping\n", "must be a mapping of names to values"),
])
def test_a_broken_profile_file_is_named(tmp_path, monkeypatch, text, message):
    (tmp_path / "broken.yaml").write_text(text)
    monkeypatch.setattr(config, "PROFILES_DIR", tmp_path)
    with pytest.raises(TaskrelError, match=f"profile {tmp_path / 'broken.yaml'} {message}"):
        config.load_profile("broken")
