# taskrel kit. Two commands do everything on a fresh clone:
#   make reproduce   set up .venv, run every notebook on the mini profile, render HTML reports
#   make test        set up .venv, run the unit, hygiene and notebook (smoke) tests
#   make student     student copies of the notebooks (no solution cells) into student/
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.taskrel-installed
PROFILE ?= mini

.PHONY: setup reproduce test test-unit test-notebooks lab report bench build-mini clean-runs student

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt  # byte-compiled here: environments may set PYTHONDONTWRITEBYTECODE
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name taskrel --display-name "Python (taskrel kit)"
	touch $(STAMP)

reproduce: setup  ## all notebooks on the mini profile into runs/mini (+ report/*.html)
	$(PY) -m taskrel_utils run --profile $(PROFILE)

test: setup  ## offline: any download attempt fails at once
	HF_HUB_OFFLINE=1 $(PY) -m pytest

test-unit: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest tests/unit tests/hygiene

test-notebooks: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest tests/notebooks

student: setup  ## the notebooks without their solution cells, into student/ (gitignored)
	$(PY) -m taskrel_utils student --out student

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

report: setup  ## re-render the HTML reports of runs/$(PROFILE)
	for nb in runs/$(PROFILE)/executed/[0-9]*.ipynb; do $(PY) -m taskrel_utils report $$nb; done

bench: setup  ## side-by-side ratios (minutes): features, task-relatedness schedules, baseline scores
	$(PY) benchmarks/bench_features.py
	$(PY) benchmarks/bench_relatedness.py
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/bench_scores.py

build-mini: setup  ## rebuild data/mini/ from the raw files (SOURCE=folder with fashion-mnist/, opencv-digits/)
	$(PY) -m taskrel_utils data build-mini $(if $(SOURCE),--source $(SOURCE),)

clean-runs:
	rm -rf runs/
