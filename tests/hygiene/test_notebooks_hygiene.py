"""Every notebook: one `parameters` cell, after the title and the learning goals and before any other
code; no stored outputs; parameters files and the runner agree with what the notebooks declare;
unknown parameters are refused."""
import json

import nbformat
import pytest
import yaml

from taskrel_utils.kit import pipeline
from taskrel_utils.core.errors import UnknownNameError
from taskrel_utils.core.paths import NOTEBOOKS_DIR

NOTEBOOKS = pipeline.list_notebooks()
PARAM_FILES = sorted((NOTEBOOKS_DIR / "params").glob("*.yaml"))


def test_notebooks_exist_and_are_numbered():
    assert NOTEBOOKS, "no notebooks found"
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers == list(range(1, len(numbers) + 1)), f"notebooks must be numbered 01, 02, ...: {numbers}"


def _parameters_cell(nb) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"one cell tagged parameters, found {len(tagged)}"
    return tagged[0]


#: notebooks that open with their title and goals: all of them
TITLE_FIRST = ("01", "02", "03", "04", "05")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_parameters_cell_before_any_other_code(path):
    """papermill needs one cell tagged ``parameters`` (it injects its values right after it); only
    markdown (the title and the learning goals) may come before it."""
    nb = nbformat.read(path, as_version=4)
    k = _parameters_cell(nb)
    assert nb.cells[k].cell_type == "code"
    assert all(c.cell_type == "markdown" for c in nb.cells[:k]), f"{path.name}: code before the parameters cell"
    if path.name[:2] in TITLE_FIRST:
        assert k >= 2 and nb.cells[0].source.startswith("# "), f"{path.name}: the title comes first"
        assert any(c.source.startswith("## Learning goals") for c in nb.cells[1:k]), \
            f"{path.name}: the learning goals come before the parameters"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_stored_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{path.name}: strip outputs before committing"
            assert cell["execution_count"] is None, f"{path.name}: clear execution counts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_defaults_are_the_mini_profile(path):
    params = pipeline.notebook_parameters(path)
    assert params["profile"] in ('"mini"', "'mini'"), f"{path.name}: default profile must be mini"
    assert {"profile", "run_dir", "seed"} <= set(params)
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "taskrel"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_sees_every_parameter(path):
    """papermill skips a line with two '=' (e.g. in its comment): then the parameter is invisible."""
    import ast

    nb = nbformat.read(path, as_version=4)
    source = nb.cells[_parameters_cell(nb)].source
    assigned = {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets}
    assert assigned == set(pipeline.notebook_parameters(path)), f"{path.name}: reword the parameter comments"


@pytest.mark.parametrize("params_file", PARAM_FILES, ids=lambda p: p.name)
def test_parameter_files_only_name_declared_parameters(params_file):
    params = yaml.safe_load(params_file.read_text())
    assert params["profile"] == params_file.stem
    pipeline.check_parameters(NOTEBOOKS, params)  # raises on a name no notebook declares


def test_a_parameter_reaches_only_the_notebooks_that_declare_it(tmp_path, monkeypatch):
    """The smoke file's ``reference_epochs`` (notebook 03's) must not reach notebook 01, which
    does not declare it; names every notebook declares reach all of them."""
    sent = {}
    monkeypatch.setattr(pipeline, "_execute", lambda path, run, params, *a: sent.setdefault(path.name, params))
    pipeline.run_notebooks("smoke", run_dir=tmp_path / "run", parameters={"seed": 3}, render=False)
    assert "reference_epochs" in sent["03_bound_decomposition.ipynb"]
    assert "reference_epochs" not in sent["01_encoder_features.ipynb"]
    assert all(p["seed"] == 3 and p["profile"] == "smoke" for p in sent.values())
    assert all(set(p) <= set(pipeline.notebook_parameters(NOTEBOOKS_DIR / name)) for name, p in sent.items())


def test_a_parameter_of_a_notebook_not_run_is_refused(tmp_path):
    with pytest.raises(UnknownNameError, match="reference_epochs"):
        pipeline.run_notebooks("smoke", run_dir=tmp_path / "run", parameters={"reference_epochs": [1]},
                               notebooks=[NOTEBOOKS[0]])


def test_unknown_parameter_is_refused_with_the_valid_names():
    with pytest.raises(UnknownNameError, match="valid .*: .*profile") as err:
        pipeline.check_parameters(NOTEBOOKS[0], {"profile": "smoke", "learning_rat": 0.1})
    assert "learning_rat" in str(err.value)


def test_runner_refuses_unknown_parameter_before_running_anything(tmp_path):
    with pytest.raises(UnknownNameError, match="typo_param"):
        pipeline.run_notebooks("smoke", run_dir=tmp_path / "run", parameters={"typo_param": 1})
    assert not any((tmp_path / "run" / "executed").glob("*.ipynb"))


def test_runner_refuses_unknown_profile():
    with pytest.raises(UnknownNameError, match="mini, paper, paper-dryrun, paper-dryrun-full, paper-original, paper-published, smoke"):
        pipeline.run_notebooks("tiny")
