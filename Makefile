# taskrel kit. Two commands do everything on a fresh clone:
#   make reproduce   set up .venv, run every notebook on the mini profile, render HTML reports
#   make test        set up .venv, run the unit, hygiene and notebook (smoke) tests
#   make student     student copies of the notebooks (no solution cells) into student/
# Without make (Windows): python -m taskrel_utils setup|reproduce|test|lab runs the same commands
# (taskrel_utils/kit/workflow.py; tests/hygiene/test_makefile_commands.py keeps the two in step).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.taskrel-installed
PROFILE ?= mini
# laptops without a GPU: make setup REQUIREMENTS=requirements-cpu.txt (the CPU build of torch, docs/workshop.md)
REQUIREMENTS ?= requirements.txt
# JupyterLab without the "get notified about news?" pop-up: the kit's settings in the environment's JupyterLab
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.d/taskrel-kit.json
# make lab STUDENT=1: JupyterLab on the student copies (rebuilt into student/ first) instead of notebooks/
LAB_DIR := $(if $(filter 1 yes true,$(STUDENT)),student,notebooks)
# as root (Docker, many cloud notebooks) JupyterLab refuses to start without --allow-root: given then, and only then
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: setup reproduce test test-unit test-notebooks test-paper test-browser lab warm report bench gpu-check build-mini clean-runs student

setup: $(STAMP) $(LAB_SETTINGS)

$(STAMP): requirements.txt $(REQUIREMENTS) pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r $(REQUIREMENTS)  # byte-compiled here: environments may set PYTHONDONTWRITEBYTECODE
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name taskrel --display-name "Python (taskrel kit)"
	touch $(STAMP)

$(LAB_SETTINGS): $(STAMP) taskrel_utils/kit/workflow.py
	$(PY) -m taskrel_utils lab-settings

reproduce: setup  ## all notebooks on the mini profile into runs/mini (+ report/*.html)
	$(PY) -m taskrel_utils run --profile $(PROFILE)

test: setup  ## offline: any download attempt fails at once; the smoke run's tests on one worker, the rest beside it (also: make test-paper, make test-browser)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n auto -m "not browser and not dryrun"

test-unit: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest tests/unit tests/hygiene

test-notebooks: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest tests/notebooks tests/test_student_copies.py

test-paper: setup  ## every notebook on the paper-dryrun profile: synthetic ImageNet/Pets/DTD/Aircraft, random-weight CLIP and timm
	HF_HUB_OFFLINE=1 $(PY) -m pytest tests/paper_dryrun

test-browser: setup $(VENV)/.taskrel-browser  ## notebook 01 in JupyterLab in headless Chromium (Debian: apt-get install chromium)
	HF_HUB_OFFLINE=1 $(PY) -m pytest tests/browser

$(VENV)/.taskrel-browser: requirements-browser.txt $(STAMP)  # playwright (165 MB) only for the browser test
	$(PY) -m pip install -r requirements-browser.txt
	touch $@

student: setup  ## the notebooks without their solution cells, into student/ (gitignored)
	$(PY) -m taskrel_utils student --out student

lab: setup  ## JupyterLab on the notebooks (as root with --allow-root); STUDENT=1: on the student copies
	$(if $(filter student,$(LAB_DIR)),$(PY) -m taskrel_utils student --out student)
	$(PY) -m jupyter lab $(LAB_DIR)/ $(ALLOW_ROOT)

warm: setup  ## before a workshop: every notebook once on $(PROFILE) (fills the cache), then the cache's place and size
	$(PY) -m taskrel_utils run --profile $(PROFILE)
	@cache=$$($(PY) -c "from taskrel_utils.core.paths import cache_dir; print(cache_dir())"); \
	echo "cache: $$cache (TASKREL_CACHE moves it)"; du -sh "$$cache"/*; du -sh "$$cache"

report: setup  ## re-render the HTML reports of runs/$(PROFILE)
	$(PY) -m taskrel_utils report runs/$(PROFILE)

bench: setup  ## side-by-side ratios (minutes): features, task-relatedness schedules, baseline scores
	$(PY) benchmarks/bench_features.py
	$(PY) benchmarks/bench_relatedness.py
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/bench_scores.py

gpu-check: setup  ## on a GPU: fast vs original schedule at CLIP size, and paper-dryrun-full's timings, into runs/gpu-check/ (GPU_CHECK_ARGS="--steps schedules" ...)
	HF_HUB_OFFLINE=1 $(PY) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

build-mini: setup  ## rebuild data/mini/ from the raw files (SOURCE=folder with fashion-mnist/, opencv-digits/)
	$(PY) -m taskrel_utils data build-mini $(if $(SOURCE),--source $(SOURCE),)

clean-runs:
	rm -rf runs/
