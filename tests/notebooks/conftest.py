"""The uninterrupted smoke run that the notebook tests assert on (shared by their modules)."""
import pytest

from taskrel_utils import pipeline


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    return pipeline.run_notebooks("smoke", run_dir=run_dir, progress=False)


def pytest_collection_modifyitems(items):
    """Under pytest-xdist (``make test``: ``-n auto --dist loadgroup``) every test that uses the
    smoke run goes to one worker, which executes the run once; the other workers take the rest."""
    for item in items:
        if "smoke_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("smoke_run"))
