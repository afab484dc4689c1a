"""The GPU check: the fast vs the original schedule of task_relatedness at CLIP size, and the
paper-dryrun-full profile end to end, every number into one JSON file and one Markdown summary.

    make gpu-check                                            # both steps on cuda, into runs/gpu-check/
    python benchmarks/gpu_check.py --steps schedules --original-cap 1000
    python benchmarks/gpu_check.py --steps dryrun --notebooks 01 03 --dryrun-budget 300
    python benchmarks/gpu_check.py --device cpu --size tiny --steps schedules   # the CPU path, in seconds

Steps (``--steps``, default both, in this order):

* ``schedules``: :func:`bench_relatedness.bench_converge` at ``--size`` (default ``pets``: d 512,
  K 37, OT batch 1,500, CLIP size): the original algorithm (the reference schedule, on the CPU)
  for its 2,001 steps (at most ``--original-cap``), then the kit's default (the fast schedule, on
  ``--device``) until its stopping rule fires, from the same seed and h_R; the held-out bound
  evaluated identically at checkpoints of both, the time each takes to settle within 1 % of its
  own final value, their ratio and the final values side by side. On a GPU a tiny fast fit runs
  first, untimed, so that CUDA's start-up is not counted.
* ``dryrun``: the synthetic stand-ins (``data make-dryrun --size full``, reused when ``--work``
  already holds them), then each notebook of ``--dryrun-profile`` in its own
  ``python -m taskrel_utils run`` process (the same run directory), its seconds read from the
  run's ``params/pipeline.json``; a notebook still running when ``--dryrun-budget`` seconds are
  spent is stopped and recorded as timed out. The paper profiles set ``device: auto``: their
  encoders (and fine-tuning) and their fast fits run on the GPU when there is one; ``--device
  cpu`` hides the GPU from the notebooks.

Each step's result, wall time and status go to ``OUT/gpu_check.json`` and ``OUT/gpu_check.md``
(rewritten after every step, so a run stopped half-way keeps what it measured). A step that fails
is recorded as failed, with its error, and the next step still runs. Exit status: 0 when every step
ran, 1 when one failed, 2 when ``--device`` names a device that is not there.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (HERE, ROOT):  # bench_relatedness beside this file; the kit of this checkout
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import bench_relatedness as bench  # noqa: E402

from taskrel_utils.core.errors import TaskrelError  # noqa: E402
from taskrel_utils.core.io import atomic_path  # noqa: E402

STEPS = ("schedules", "dryrun")
#: the ratio the kit aims at: the original's time to settle within 1 % of its own final value
#: over the fast schedule's (each on its own device)
GOAL_RATIO = 20.0
JSON_NAME, MARKDOWN_NAME = "gpu_check.json", "gpu_check.md"


class DeviceUnavailableError(TaskrelError):
    """``--device`` names a device this machine does not have."""


def device_info(device: str) -> dict:
    """What the check runs on: torch, CUDA and, on a GPU, its name and memory. Refuses a CUDA
    device that torch cannot see."""
    import torch

    info = dict(device=device, torch=torch.__version__, torch_cuda=torch.version.cuda, cpus=os.cpu_count(),
                python=platform.python_version(), host=platform.node())
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"--device {device}: torch {torch.__version__} sees no CUDA device (its CUDA build: "
                f"{torch.version.cuda}); run the check on a GPU machine, or pass --device cpu for its CPU path")
        index = torch.device(device).index or 0
        if index >= torch.cuda.device_count():
            raise DeviceUnavailableError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA "
                                         f"device(s), numbered from 0")
        props = torch.cuda.get_device_properties(index)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    gpu_capability=f"{props.major}.{props.minor}")
    return info


# --- step: the two schedules -------------------------------------------------------------------

def warm_up(device: str) -> float:
    """Seconds of one tiny fast fit on ``device`` (CUDA's context and kernels start here, not in a
    timed fit)."""
    sz = bench.SIZES["tiny"]
    data = bench.synthetic(sz["d"], sz["K"], sz["n_ref"], sz["n_tgt"], sz["n_test"])
    t0 = time.perf_counter()
    bench.task_relatedness(*data, scale=sz["scale"], steps=sz["steps"], batch_size=sz["batch"], log_every=0,
                           device=device, reference_classifier_options=dict(iterations=20))
    return time.perf_counter() - t0


def schedules_step(args) -> dict:
    """The original vs the fast schedule at ``args.size`` (see the module doc)."""
    sz = bench.SIZES[args.size]
    warm = warm_up(args.device) if args.device.startswith("cuda") else None
    result = bench.bench_converge(args.size, sz, args.original_cap, args.seed, device=args.device)
    result.update(warm_up_seconds=warm, goal_ratio=GOAL_RATIO,
                  meets_goal=bool(result["ratio_within_1pct"] >= GOAL_RATIO))
    return result


# --- step: the dry-run profile ---------------------------------------------------------------

def notebook_environment(device: str, data_root: Path, cache: Path) -> dict:
    """The environment of the ``run`` processes: the stand-ins, a cache of their own, offline, this
    checkout's kit first on the path, and only the GPU that ``device`` names (none for the CPU)."""
    env = dict(os.environ, IMAGENET_ROOT=str(data_root / "imagenet"), TASKREL_DATA_ROOT=str(data_root),
               TASKREL_CACHE=str(cache), HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif device.startswith("cuda:"):
        env["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
    return env


def run_notebook(notebook: str, profile: str, run_dir: Path, env: dict, log: Path, timeout: float) -> tuple[str, float]:
    """Run one notebook in its own ``python -m taskrel_utils run`` process; ``(status, wall seconds)``
    with status ``ok``, ``failed`` or ``timed out`` (the process group stopped after ``timeout``)."""
    cmd = [sys.executable, "-m", "taskrel_utils", "run", "--profile", profile, "--run-dir", str(run_dir),
           "--notebooks", notebook, "--no-report"]
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            status = "ok" if proc.wait(timeout=max(timeout, 1.0)) == 0 else "failed"
        except subprocess.TimeoutExpired:
            _stop(proc)
            status = "timed out"
    return status, time.perf_counter() - t0


def _stop(proc: subprocess.Popen) -> None:
    """Stop the process group this script started: SIGINT (papermill shuts its kernel down), then
    SIGTERM, then SIGKILL (a kernel whose parent is gone exits by itself)."""
    for sig, wait in ((signal.SIGINT, 20), (signal.SIGTERM, 10), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def dryrun_data(args, work: Path) -> dict:
    """The stand-ins under ``work`` (written unless there already); their folder and seconds."""
    from taskrel_utils.inputs.dryrun import make_dryrun

    root = work / f"data-{args.dryrun_size}"
    if (root / "imagenet").exists():
        return dict(root=str(root), written=False, seconds=0.0)
    t0 = time.perf_counter()
    make_dryrun(root, size=args.dryrun_size)
    return dict(root=str(root), written=True, seconds=time.perf_counter() - t0)


def dryrun_step(args, out: Path, report=lambda partial: None) -> dict:
    """The dry-run profile's notebooks, one process each, under ``args.dryrun_budget`` seconds;
    ``report(result so far)`` after each notebook."""
    import shutil

    from taskrel_utils.method.fit_engine import device_for
    from taskrel_utils.kit.pipeline import list_notebooks

    notebooks = [p for p in list_notebooks()
                 if not args.notebooks or any(p.name.startswith(n) for n in args.notebooks)]
    if not notebooks:
        raise TaskrelError(f"--notebooks {' '.join(args.notebooks)}: no notebook matches; give numbers such as 01 03")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = dryrun_data(args, work)
    cache, run_dir, logs = work / "cache", work / f"run-{args.dryrun_profile}", out / "dryrun-logs"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run directory; the cache may be warm (recorded)
    logs.mkdir(parents=True, exist_ok=True)
    env = notebook_environment(args.device, Path(data["root"]), cache)
    where = "cpu" if args.device == "cpu" else str(device_for(None))  # device: auto in the paper profiles
    result = dict(profile=args.dryrun_profile, size=args.dryrun_size, data=data, run_dir=str(run_dir),
                  cache=str(cache), cache_was_warm=cache.exists() and any(cache.iterdir()),
                  devices=dict(encoders=where, fast_fits=where), budget_seconds=args.dryrun_budget, notebooks={})
    deadline = time.perf_counter() + (args.dryrun_budget or math.inf)
    for path in notebooks:
        left = deadline - time.perf_counter()
        if left <= 0:
            result["notebooks"][path.stem] = dict(status="skipped (budget spent)")
            continue
        log = logs / f"{path.stem}.log"
        status, wall = run_notebook(path.name[:2], args.dryrun_profile, run_dir, env, log, min(left, 1e7))
        row = dict(status=status, wall_seconds=round(wall, 1), log=str(log))
        seconds = _pipeline_seconds(run_dir)
        if status == "ok" and path.stem in seconds:
            row["seconds"] = seconds[path.stem]
        if status != "ok":
            row["log_tail"] = log.read_text(errors="replace")[-2000:]
        result["notebooks"][path.stem] = row
        report(result)
    result["reference_classes"] = _reference_classes(run_dir)
    failed = [n for n, r in result["notebooks"].items() if r["status"] != "ok"]
    if failed:
        raise StepError(f"notebooks not completed: {', '.join(failed)} (see their log_tail)", result)
    return result


def _pipeline_seconds(run_dir: Path) -> dict:
    path = run_dir / "params" / "pipeline.json"
    return json.loads(path.read_text()).get("seconds", {}) if path.exists() else {}


def _reference_classes(run_dir: Path) -> list[dict]:
    """The drawn reference classes and pool sizes per target (notebook 01's table), if written."""
    path = run_dir / "tables" / "01_reference_classes.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- running the steps, writing the record ---------------------------------------------------

class StepError(TaskrelError):
    """A step that ran but did not complete; ``partial`` holds what it measured."""

    def __init__(self, message: str, partial: dict):
        super().__init__(message)
        self.partial = partial


def run_steps(steps: dict, record: dict, out: Path) -> bool:
    """Run ``steps`` (``{name: callable returning a dict}``) in order into ``record["steps"]``,
    writing the JSON and Markdown after each; a step that raises is recorded as failed (its error
    and traceback, and what it measured if it says) and the next one runs. True when all passed."""
    ok = True
    for name, fn in steps.items():
        t0 = time.perf_counter()
        entry = dict(status="running")
        record["steps"][name] = entry
        try:
            entry["result"] = fn()
            entry["status"] = "ok"
        except Exception as e:  # recorded, not raised: the other steps still run
            ok = False
            entry.update(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
            if isinstance(e, StepError):
                entry["result"] = e.partial
        entry["wall_seconds"] = round(time.perf_counter() - t0, 1)
        record["wall_seconds"] = round(sum(s.get("wall_seconds", 0) for s in record["steps"].values()), 1)
        write_record(record, out)
    return ok


def _finite(x):
    """``x`` with NaN / inf replaced by None (strict JSON)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def write_record(record: dict, out: Path) -> None:
    """The JSON (steps in the order they ran) and the Markdown, each replaced atomically: a check
    stopped meanwhile leaves whole files."""
    for name, text in ((JSON_NAME, json.dumps(_finite(record), indent=2, default=str) + "\n"),
                       (MARKDOWN_NAME, markdown_summary(record))):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)


def _num(x, fmt="{:.1f}"):
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)


def _schedules_markdown(entry: dict) -> list[str]:
    r = entry.get("result") or {}
    if entry["status"] != "ok" or not r:
        return [f"Schedules: **{entry['status']}**: {entry.get('error', '')}", ""]
    lines = [f"Fast vs original schedule of `task_relatedness` at size `{r['size']}` (d {r['d']}, K {r['K']}, "
             f"pools {r['n_ref']} / {r['n_tgt']}, OT batch {r['batch']:,}, {r['scale']} scale, seed {r['seed']}); "
             f"the held-out bound evaluated identically every {r['checkpoint_every']} steps of both:",
             "", "| schedule | device | steps | fit seconds | seconds / step | settled within 1 % (s, step) "
             "| value | L_C | H | tau x W | transferred accuracy |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, key in (("original (reference schedule)", "original"), ("kit default (fast schedule)", "fast")):
        s = r[key]
        f = s["final"]
        steps = f"{s['steps']}" + (f" (capped, of {r['original_full_steps']})" if s.get("capped") else
                                   (" (converged)" if s["converged"] else ""))
        lines.append(f"| {label} | {s['device']} | {steps} | {_num(s['seconds'])} "
                     f"| {_num(s['seconds_per_step'], '{:.4f}')} "
                     f"| {_num(s['within_1pct_seconds'], '{:.2f}')}, {s['within_1pct_step']} "
                     f"| {_num(f['value'], '{:.4f}')} | {_num(f['reweighted_reference_loss'], '{:.4f}')} "
                     f"| {_num(f['label_mismatch'], '{:.4f}')} | {_num(f['distribution_mismatch'], '{:.4f}')} "
                     f"| {_num(f['target_accuracy'], '{:.3f}')} |")
    h = r["h_R"]
    lines += ["", f"Time to settle, original over fast: **{_num(r['ratio_within_1pct'])}x** (goal "
                  f"{GOAL_RATIO:.0f}x); whole runs {_num(r['ratio_total'])}x. h_R on the CPU: the original SGD "
                  f"({h['original_iterations']} iterations) {_num(h['original_seconds'])} s, the kit's L-BFGS "
                  f"{_num(h['kit_seconds'])} s.", ""]
    return lines


def _dryrun_markdown(entry: dict) -> list[str]:
    r = entry.get("result") or {}
    if not r:
        return [f"Dry run: **{entry['status']}**: {entry.get('error', '')}", ""]
    lines = [f"`{r['profile']}` on synthetic stand-ins (`data make-dryrun --size {r['size']}`), encoders on "
             f"{r['devices']['encoders']}, fast fits on {r['devices']['fast_fits']}, "
             f"{'warm' if r['cache_was_warm'] else 'empty'} cache:", "", "| part | seconds | status |",
             "| --- | --- | --- |",
             f"| data make-dryrun --size {r['size']} | {_num(r['data']['seconds'])} "
             f"| {'written' if r['data']['written'] else 'reused'} |"]
    for name, row in r["notebooks"].items():
        lines.append(f"| {name} | {_num(row.get('seconds', row.get('wall_seconds')))} | {row['status']} |")
    lines.append(f"| the step (wall) | {_num(entry.get('wall_seconds'))} | {entry['status']} |")
    pools = [row for row in r.get("reference_classes", []) if "target" in row]
    if pools:
        lines += ["", "Reference per target: " + "; ".join(
            f"{p['target']}: K_R {p['K_R']}, {p['reference_train']} train / {p['reference_test']} test images"
            for p in pools) + "."]
    return lines + [""]


RENDERERS = {"schedules": _schedules_markdown, "dryrun": _dryrun_markdown}


def markdown_summary(record: dict) -> str:
    """The record as Markdown: the device, then one table per step that ran."""
    d = record.get("device_info", {})
    where = (f"{d['gpu']}, {d['gpu_memory_gib']} GiB" if "gpu" in d else record.get("device", "?"))
    lines = [f"## GPU check: {where}", "",
             f"torch {d.get('torch')} (CUDA {d.get('torch_cuda')}), {d.get('cpus')} CPUs, {record.get('date')}, "
             f"`{record.get('command')}`; {_num(record.get('wall_seconds'))} s in all.", ""]
    for name, entry in record["steps"].items():
        lines.append(f"### {name} ({entry['status']}, {_num(entry.get('wall_seconds'))} s)")
        lines.append("")
        render = RENDERERS.get(name)
        lines += render(entry) if render else [f"{entry.get('error', 'its result is in the JSON')}", ""]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu (the CPU path, for tests)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "gpu-check"), help="the JSON, Markdown and logs "
                                                                           "(default: runs/gpu-check/)")
    ap.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS, help="default: both")
    ap.add_argument("--size", default="pets", choices=list(bench.SIZES),
                    help="schedules: bench_relatedness's size (default pets: d 512, K 37, OT batch 1,500)")
    ap.add_argument("--original-cap", type=int, default=None,
                    help="schedules: a cap on the original's steps (default: none, its 2,001 at pets)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dryrun-profile", default="paper-dryrun-full")
    ap.add_argument("--dryrun-size", default="full", choices=["smoke", "full"], help="data make-dryrun --size")
    ap.add_argument("--notebooks", nargs="+", default=None, help="dryrun: notebook numbers (default: all)")
    ap.add_argument("--dryrun-budget", type=float, default=None,
                    help="dryrun: seconds for the notebooks; the one running then is stopped (default: no limit)")
    ap.add_argument("--work", default="/tmp/taskrel-gpu-check",
                    help="dryrun: the stand-ins, the cache and the run directory (default /tmp/taskrel-gpu-check)")
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    out = Path(args.out)
    try:
        info = device_info(args.device)
    except DeviceUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("device:", ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    record = dict(date=datetime.now(timezone.utc).isoformat(timespec="seconds"), device=args.device,
                  device_info=info, command=" ".join(["benchmarks/gpu_check.py", *(argv or sys.argv[1:])]),
                  arguments=vars(args), steps={})
    def dryrun_so_far(partial):  # a run stopped from outside keeps the notebooks done
        record["steps"]["dryrun"]["result"] = partial
        write_record(record, out)

    steps = {"schedules": lambda: schedules_step(args), "dryrun": lambda: dryrun_step(args, out, dryrun_so_far)}
    ok = run_steps({name: steps[name] for name in STEPS if name in args.steps}, record, out)
    print(f"wrote {out / JSON_NAME} and {out / MARKDOWN_NAME}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
