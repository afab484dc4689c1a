"""The uninterrupted smoke run that the notebook tests assert on (shared by their modules)."""
import pytest

from taskrel_utils.kit import pipeline


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    return pipeline.run_notebooks("smoke", run_dir=run_dir, progress=False)
