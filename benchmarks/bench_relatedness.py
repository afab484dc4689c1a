"""Fast vs reference schedule of task_relatedness, side by side on the same synthetic inputs.

    .venv/bin/python benchmarks/bench_relatedness.py                       # like for like, mini and CLIP size
    .venv/bin/python benchmarks/bench_relatedness.py --converge-sizes mini128 --out mini.json
    .venv/bin/python benchmarks/bench_relatedness.py --mode per-step --sizes pets --steps 300
    .venv/bin/python benchmarks/bench_relatedness.py --converge-sizes pets --device cuda   # the fast schedule on a GPU

``--mode converge`` (default), per size: the ORIGINAL algorithm (reference schedule, its start,
Adam on every parameter, D's original step size, exactly the authors' 1,001 steps at small scale
and 2,001 at large; ``--original-cap`` caps them and the result says so) and the kit's default
(fast schedule with its profile's options, class-mean start, B and D in closed form, until its
stopping rule fires), both from the same seed and h_R. They are compared on the SAME quantity:
the bound on the test sets (value = L_C + H + tau x W, and its terms), evaluated by one function
on one state at checkpoints of both runs (their loops timed without the evaluations). Reported:
the time each run needs to settle within 1 % of its OWN final value, their ratio, and the final
values side by side; also, for h_R, the time of the kit's L-BFGS to reach the original SGD
schedule's final pool objective F. ``--out FILE`` writes every number (checkpoints included).

``--mode per-step``: seconds per step of the reference schedule and of each fast variant on the
SAME algorithm (the original's start and Adam updates), and the relative differences of the
value and terms. Not a test.

``--device`` is the fast schedule's torch device (default: the fit's own, the GPU when there is
one); the reference schedule and h_R run on the CPU whatever it says. benchmarks/gpu_check.py
calls :func:`bench_converge` for its side-by-side numbers.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import torch

from taskrel_utils.method.bound import evaluate_bound
from taskrel_utils.method.fit_engine import device_for
from taskrel_utils.method.reference_classifier import ORIGINAL_OPTIMISER, train_reference_classifier
from taskrel_utils.method.relatedness import (ORIGINAL_FIT, SCALE_PRESETS, draw_batches, fit_converged, gradient_step,
                                       initial_transformations, prepare, start_fit, task_relatedness, thread_limit,
                                       transport_plan)

SIZES = {  # name: d, K, reference train, target train, test per side, OT batch, scale, steps
    "pets": dict(d=512, K=37, n_ref=3700, n_tgt=3680, n_test=1850, batch=1500, scale="large", steps=100),
    "mini200": dict(d=200, K=10, n_ref=4000, n_tgt=1500, n_test=1000, batch=500, scale="small", steps=200),
    "mini256": dict(d=256, K=10, n_ref=4000, n_tgt=2000, n_test=1000, batch=250, scale="small", steps=200),
    "mini128": dict(d=128, K=10, n_ref=4000, n_tgt=2000, n_test=1000, batch=250, scale="small", steps=200),
    # seconds, not a measurement: the CPU test of benchmarks/gpu_check.py. The original h_R's SGD
    # (2001 steps at lr 1e-4) diverges on so few 16-d points: hr_original shortens and slows it.
    "tiny": dict(d=16, K=3, n_ref=150, n_tgt=150, n_test=60, batch=50, scale="small", steps=20,
                 hr_original=dict(iterations=50, lr=1e-6)),
}
#: the sizes ``--mode per-step`` runs by default
PER_STEP_SIZES = ("pets", "mini200", "mini256", "mini128")
#: fast-schedule variants (options on top of the defaults); "fast" = the default fast schedule
VARIANTS = {
    "fast64": dict(precision="float64", ot_every=1),
    "fast": dict(),
    "fast32": dict(precision="float32", ot_every=1),
    "fast64_ot5": dict(precision="float64", ot_every=5),
    "fast32_ot5": dict(precision="float32", ot_every=5),
    "fast32_ot10": dict(precision="float32", ot_every=10),
}
TERMS = ("reweighted_reference_loss", "label_mismatch", "distribution_mismatch", "wasserstein", "tau",
         "wasserstein_theorem", "target_cross_entropy")
#: the kit's mini profile (taskrel_utils/profiles/mini.yaml): h_R options and fit options
MINI_PAIR = dict(hr=dict(iterations=500, tau0=0.5), fit=dict(steps=200, batch_size=250))


def synthetic(d, K, n_ref, n_tgt, n_test, seed=0):
    """Gaussian classes (a random low-rank class structure in d dimensions) and a planted affine
    copy with permuted labels and a shifted prior (the planted tests' construction, scaled up)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(K, d)) * (3.0 / np.sqrt(d / 16))

    def draw(n, w):
        y = rng.choice(K, size=n, p=w / w.sum())
        return mu[y] + rng.normal(size=(n, d)), y

    u = np.ones(K)
    R, R_te = draw(n_ref, u), draw(n_test, u)
    w = np.linspace(0.6, 1.4, K)
    M = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    c = rng.normal(size=d)
    perm = rng.permutation(K)
    (Zt, yt), (Zt_te, yt_te) = draw(n_tgt, w), draw(n_test, w)
    return R, R_te, (Zt @ M.T + c, perm[yt]), (Zt_te @ M.T + c, perm[yt_te])


def quantities(res):
    """The value and each term of one result (``target_cross_entropy`` for scale)."""
    q = {"value": res.value}
    q.update({k: res.terms.get(k, np.nan) for k in TERMS if k != "target_cross_entropy"})
    q["target_cross_entropy"] = res.target_cross_entropy
    return q


def rel(a, b):
    return abs(a - b) / max(abs(a), 1e-12)


def bench_size(name, sz, steps, variants, seeds, b_init, device=None):
    data = synthetic(sz["d"], sz["K"], sz["n_ref"], sz["n_tgt"], sz["n_test"])
    R = data[0]
    X = (R[0] - R[0].mean(0)) / R[0].std(0)
    h_R = train_reference_classifier(X, R[1], sz["K"], scale=sz["scale"], iterations=300, optimizer="adam",
                                     lr=1e-2, weight_decay=0.0, tau0=0.2)
    common = dict(scale=sz["scale"], reference_classifier=h_R, steps=steps, batch_size=sz["batch"], log_every=0,
                  device=device, **dict(ORIGINAL_FIT, b_init=b_init, a_init="identity"))
    per_step, q = {}, {}
    for seed in seeds:  # schedules interleaved per seed: the same machine load for all of them
        for sched in ["reference"] + variants:
            opts = dict(schedule="reference") if sched == "reference" else dict(schedule="fast", **VARIANTS[sched])
            res = task_relatedness(*data, seed=seed, **common, **opts)
            per_step.setdefault(sched, []).append(res.timings["transformations"] / steps)
            q.setdefault(sched, []).append(quantities(res))
    print(f"\n== {name}: d={sz['d']} K={sz['K']} batch={sz['batch']} steps={steps} seeds={list(seeds)} b_init={b_init}")
    t_ref = np.median(per_step["reference"])
    print(f"  {'schedule':12s} {'s/step':>8s} {'ratio':>6s}  rel. diff vs reference: value per seed, of the seed mean"
          " | terms (max over seeds)")
    for sched in ["reference"] + variants:
        t = np.median(per_step[sched])
        per_seed = [rel(a["value"], b["value"]) for a, b in zip(q["reference"], q[sched])]
        mean_diff = rel(np.mean([a["value"] for a in q["reference"]]), np.mean([b["value"] for b in q[sched]]))
        diffs = {k: max(rel(a[k], b[k]) for a, b in zip(q["reference"], q[sched])) for k in q[sched][0]}
        flag = " W FAILED (1e10 flag) in seeds " + str([s for s, x in zip(seeds, q[sched]) if x["wasserstein"] >= 1e9])
        terms = " ".join(f"{k[:12]}={v:.1e}" for k, v in diffs.items() if k != "value")
        print(f"  {sched:12s} {t:8.4f} {t_ref / t:5.1f}x  value {' '.join(f'{x:.1e}' for x in per_seed)}, mean"
              f" {mean_diff:.1e} | {terms}{flag if '[]' not in flag else ''}")
    vals = np.array([x["value"] for x in q["reference"]])
    print("  reference values per seed:", np.round(vals, 4).tolist(),
          f"(seed-to-seed std/mean {vals.std() / vals.mean():.1e})" if len(seeds) > 1 else "")
    print("  reference seed 0:", " ".join(f"{k}={v:.4g}" for k, v in q["reference"][0].items()))


def bench_mini_pair(variants, device=None):
    """One pair at the kit's mini size (synthetic mini256): h_R training + fit + evaluation."""
    sz = SIZES["mini256"]
    data = synthetic(sz["d"], sz["K"], sz["n_ref"], sz["n_tgt"], sz["n_test"])
    print("\n== one mini pair (mini256, kit's mini options: h_R 500 iterations, 200 steps, batch 250)")
    for sched in ["reference"] + variants:
        opts = dict(schedule="reference") if sched == "reference" else dict(schedule="fast", **VARIANTS[sched])
        t0 = time.perf_counter()
        res = task_relatedness(*data, seed=0, reference_classifier_options=MINI_PAIR["hr"], **MINI_PAIR["fit"],
                               device=device, **ORIGINAL_FIT, **opts)
        tm = res.timings
        print(f"  {sched:12s} total {time.perf_counter() - t0:6.2f} s = h_R {tm['reference_classifier']:.2f}"
              f" + fit {tm['transformations']:.2f} + evaluation {tm['evaluation']:.2f}   value {res.value:.4f}")


def bench_h_R(X, y, K, scale, original=None):
    """h_R: the original SGD schedule (``original`` overrides some of its options) vs the kit's
    L-BFGS, time to the SGD's final pool objective. Returns the kit's h_R and the numbers printed."""
    t0 = time.perf_counter()
    orig = train_reference_classifier(X, y, K, scale=scale, log_every=0, **dict(ORIGINAL_OPTIMISER, **(original or {})))
    t_orig = time.perf_counter() - t0
    target = orig.fit_info["objective"]
    t0 = time.perf_counter()
    kit = train_reference_classifier(X, y, K, scale=scale, log_every=1)
    t_kit = time.perf_counter() - t0
    per_it = t_kit / max(len(kit.history), 1)
    reach = next((r["iteration"] for r in kit.history if r["objective"] <= target * 1.01), None)
    t_reach = float("nan") if reach is None else (reach + 1) * per_it
    print(f"  h_R original SGD {orig.fit_info['iterations']} it: {t_orig:.1f} s, F {target:.5f}, acc "
          f"{orig.fit_info['train_accuracy']:.3f} | kit L-BFGS {kit.fit_info['iterations']} it (converged "
          f"{kit.fit_info['converged']}): {t_kit:.1f} s, F {kit.fit_info['objective']:.5f}, acc "
          f"{kit.fit_info['train_accuracy']:.3f}; within 1 % of the SGD's F after ~{t_reach:.2f} s "
          f"(ratio {t_orig / t_reach:.0f}x; log_every=1 adds evaluation time, so an underestimate)")
    numbers = dict(original_iterations=orig.fit_info["iterations"], original_seconds=t_orig, original_objective=target,
                   original_train_accuracy=orig.fit_info["train_accuracy"], kit_iterations=kit.fit_info["iterations"],
                   kit_converged=bool(kit.fit_info["converged"]), kit_seconds=t_kit,
                   kit_objective=kit.fit_info["objective"], kit_train_accuracy=kit.fit_info["train_accuracy"],
                   kit_within_1pct_seconds=t_reach, ratio_within_1pct=t_orig / t_reach)
    return kit, numbers


#: checkpoints per run of ``--mode converge``: the held-out bound is evaluated every this many steps
CHECKPOINT_EVERY = {"small": 10, "large": 25}
#: the kit's default fit at each size (``--mode converge``): its profile's options. Mini: the mini
#: profile's ``relatedness`` (taskrel_utils/profiles/mini.yaml); large (CLIP size): the fast
#: schedule's defaults at ``scale="large"``
KIT_OPTIONS = {"small": dict(steps=1000, tol=1e-3, window=50, min_steps=100, precision="float32"), "large": {}}
#: the share of its own final value a schedule must stay within from some checkpoint on
WITHIN = 0.01


def original_steps(sz) -> int:
    """The original's step count at a size: the authors' fixed count of its scale (1,001 small, 2,001 large)."""
    return SCALE_PRESETS[sz["scale"]]["steps"]


def checkpointed_fit(data, checkpoint_every: int, seed: int, **options):
    """One fit run step by step with the kit's public step functions (``relatedness.prepare`` ...
    ``gradient_step``), exactly as :func:`~taskrel_utils.fit_steps.fit_transformations` runs it, with
    a snapshot of ``(A, A_inv, b, B, D)`` at the start and every ``checkpoint_every`` steps (and at
    the last). Returns ``(state, [(steps done, fit seconds, snapshot)], converged)``; the clock runs
    from the start's computation (the kit's class-mean start is part of its cost) and stops while
    a snapshot is copied."""
    state = prepare(*data, seed=seed, **options)
    o = state.options
    ot_every = 1 if state.schedule == "reference" else int(o["ot_every"])
    steps = int(o["steps"])
    objectives, converged, snaps = [], False, []
    with thread_limit(state):
        t0 = time.perf_counter()
        tr = start_fit(state, initial_transformations(state))
        elapsed = time.perf_counter() - t0
        snaps.append((0, elapsed, tr.current()))
        t0 = time.perf_counter()
        for step in range(steps):
            if step % ot_every == 0:
                transport_plan(state, tr, *draw_batches(state, tr))
            objectives.append(gradient_step(state, tr)["objective"])
            converged = o["stop"] == "converged" and fit_converged(objectives, o)
            if (step + 1) % checkpoint_every == 0 or converged or step == steps - 1:
                if tr.device.type == "cuda":
                    torch.cuda.synchronize()
                elapsed += time.perf_counter() - t0
                snaps.append((step + 1, elapsed, tr.current()))
                t0 = time.perf_counter()
            if converged:
                break
    return state, snaps, converged


def _evaluate(evaluator, snaps) -> list[dict]:
    """The held-out bound (value and terms, :func:`~taskrel_utils.bound.evaluate_bound` on ONE
    evaluator state, so computed identically for both schedules) at every snapshot, with the code's
    W (``value``: its failure flag 1e10 while a pseudo-class has no reference point) and with the
    theorem's W, which never fails (``value_theorem`` = L_C + H + tau x W_theorem)."""
    evaluator.options["theorem_wasserstein"] = True
    rows = []
    for step, seconds, tr in snaps:
        ev = evaluate_bound(evaluator, *tr)
        row = dict(step=step, seconds=seconds, **{k: ev[k] for k in CHECKPOINT_TERMS})
        row["value_theorem"] = ev["reweighted_reference_loss"] + ev["label_mismatch"] + ev["tau"] * ev["wasserstein_theorem"]
        rows.append(row)
    return rows


#: what each checkpoint row records of the bound
CHECKPOINT_TERMS = ("value", "reweighted_reference_loss", "label_mismatch", "distribution_mismatch", "wasserstein",
                    "wasserstein_failed", "wasserstein_theorem", "tau", "target_accuracy", "target_cross_entropy")


def settled(rows, within: float = WITHIN, key: str = "value"):
    """The first checkpoint from which ``key`` stays within ``within`` of the run's final value
    (the last checkpoint's): ``(seconds, step)``."""
    final = rows[-1][key]
    first = len(rows) - 1
    while first > 0 and abs(rows[first - 1][key] - final) <= within * abs(final):
        first -= 1
    return rows[first]["seconds"], rows[first]["step"]


def _schedule_numbers(rows, converged, device, capped) -> dict:
    """One schedule's run in ``bench_converge``'s returned dict."""
    last = rows[-1]
    t_settle, step_settle = settled(rows)
    t_theorem, step_theorem = settled(rows, key="value_theorem")
    return dict(device=device, steps=int(last["step"]), converged=bool(converged), capped=bool(capped),
                seconds=last["seconds"], seconds_per_step=last["seconds"] / max(int(last["step"]), 1),
                within_1pct_seconds=t_settle, within_1pct_step=int(step_settle),
                theorem_within_1pct_seconds=t_theorem, theorem_within_1pct_step=int(step_theorem),
                value_theorem=float(last["value_theorem"]),
                final={k: (bool(v) if k == "wasserstein_failed" else float(v)) for k, v in last.items()
                       if k not in ("step", "seconds")},
                value=float(last["value"]), target_accuracy=float(last["target_accuracy"]), checkpoints=rows)


def bench_converge(name, sz, original_cap=None, seed=0, device=None):
    """The original algorithm and the kit's default on the same inputs and h_R, compared on the same
    held-out objective: the bound's value and terms on the test sets, evaluated identically
    (:func:`_evaluate`) at checkpoints of both runs.

    The original: the reference schedule with the authors' start, Adam updates and stop
    (:data:`ORIGINAL_FIT`), exactly :func:`original_steps` steps (``original_cap`` caps them; the
    result says ``capped``). The kit: the fast schedule with the options of :data:`KIT_OPTIONS`
    on ``device`` (None: the fit's default), until its stopping rule fires. For each, the seconds
    until its value stays within 1 % of its OWN final value, and the final values side by side.
    Returns ``{"h_R": {...}, "original": {...}, "fast": {...}, "ratio_within_1pct", "ratio_total", ...}``
    (seconds: the fits' own loops, evaluations excluded)."""
    data = synthetic(sz["d"], sz["K"], sz["n_ref"], sz["n_tgt"], sz["n_test"])
    R = data[0]
    X = (R[0] - R[0].mean(0)) / R[0].std(0)
    full = original_steps(sz)
    steps = min(full, original_cap) if original_cap else full
    every = sz.get("checkpoint_every", CHECKPOINT_EVERY[sz["scale"]])
    print(f"\n== {name}: d={sz['d']} K={sz['K']} pools {sz['n_ref']}/{sz['n_tgt']} batch={sz['batch']} "
          f"scale={sz['scale']} seed={seed}", flush=True)
    h_R, h_R_numbers = bench_h_R(X, R[1], sz["K"], sz["scale"], sz.get("hr_original"))
    common = dict(scale=sz["scale"], reference_classifier=h_R, batch_size=sz["batch"])
    runs = {}
    for label, opts in (("original", dict(schedule="reference", **ORIGINAL_FIT, steps=steps)),
                        ("fast", dict(schedule="fast", device=device, **KIT_OPTIONS[sz["scale"]]))):
        runs[label] = checkpointed_fit(data, every, seed, **common, **opts)
    evaluator = runs["fast"][0]
    other = runs["original"][0]
    if not all(np.array_equal(getattr(evaluator, k), getattr(other, k)) for k in ("Xr_te", "Xt_te", "yr_te", "yt_te")):
        raise RuntimeError("the two schedules see different test sets: the comparison would not be like for like")
    numbers = {}
    for label, (state, snaps, converged) in runs.items():
        device_used = "cpu" if label == "original" else str(device_for(device))
        numbers[label] = _schedule_numbers(_evaluate(evaluator, snaps), converged, device_used,
                                           label == "original" and steps < full)
    o, f = numbers["original"], numbers["fast"]
    print(f"  objective compared: the bound on the test sets (value = L_C + H + tau x W), evaluated identically at "
          f"checkpoints every {every} steps; 'settled' = within 1 % of the run's own final value from then on")
    print(f"  {'schedule':9s} {'steps':>6s} {'fit s':>8s} {'settled s':>9s} (step) {'value':>8s} {'L_C':>7s} {'H':>7s} "
          f"{'tau*W':>7s} {'W':>8s} {'tau':>7s} {'acc':>6s}")
    for label, s in (("original", o), ("kit", f)):
        v = s["final"]
        print(f"  {label:9s} {s['steps']:6d} {s['seconds']:8.2f} {s['within_1pct_seconds']:9.2f} ({s['within_1pct_step']:4d})"
              f" {v['value']:8.4f} {v['reweighted_reference_loss']:7.4f} {v['label_mismatch']:7.4f}"
              f" {v['distribution_mismatch']:7.4f} {v['wasserstein']:8.3f} {v['tau']:7.4f} {v['target_accuracy']:6.3f}"
              f"{'  (capped at ' + str(steps) + ' of ' + str(full) + ' steps)' if s['capped'] else ''}", flush=True)
    ratio_settled = o["within_1pct_seconds"] / f["within_1pct_seconds"] if f["within_1pct_seconds"] > 0 else float("nan")
    ratio_total = o["seconds"] / f["seconds"]
    ratio_theorem = (o["theorem_within_1pct_seconds"] / f["theorem_within_1pct_seconds"]
                     if f["theorem_within_1pct_seconds"] > 0 else float("nan"))
    print(f"  time to settle: original {o['within_1pct_seconds']:.2f} s / kit {f['within_1pct_seconds']:.2f} s = "
          f"{ratio_settled:.1f}x; whole runs {o['seconds']:.2f} s / {f['seconds']:.2f} s = {ratio_total:.1f}x; "
          f"final values {o['value']:.4f} (original) vs {f['value']:.4f} (kit)", flush=True)
    print(f"  with the theorem's W (never the 1e10 flag): settled original {o['theorem_within_1pct_seconds']:.2f} s "
          f"(step {o['theorem_within_1pct_step']}) / kit {f['theorem_within_1pct_seconds']:.2f} s (step "
          f"{f['theorem_within_1pct_step']}) = {ratio_theorem:.1f}x; final values {o['value_theorem']:.4f} (original) vs "
          f"{f['value_theorem']:.4f} (kit)", flush=True)
    return dict(size=name, d=sz["d"], K=sz["K"], n_ref=sz["n_ref"], n_tgt=sz["n_tgt"], batch=sz["batch"],
                scale=sz["scale"], seed=seed, original_cap=original_cap, original_full_steps=full,
                checkpoint_every=every, h_R=h_R_numbers, original=o, fast=f,
                ratio_within_1pct=ratio_settled, ratio_total=ratio_total, ratio_within_1pct_theorem=ratio_theorem)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", default="converge", choices=["converge", "per-step"])
    ap.add_argument("--converge-sizes", nargs="+", default=["mini128", "pets"], choices=list(SIZES))
    ap.add_argument("--original-cap", type=int, default=None,
                    help="cap on the original's steps (default: none, the authors' 1,001 at small scale, 2,001 at large)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="converge: also write the numbers (checkpoints included) to this JSON file")
    ap.add_argument("--sizes", nargs="+", default=list(PER_STEP_SIZES), choices=list(SIZES))
    ap.add_argument("--steps", type=int, default=None, help="steps per fit (default: per size, pets 100, mini 200)")
    ap.add_argument("--variants", nargs="+", default=["fast", "fast32", "fast64_ot5", "fast32_ot10"],
                    choices=list(VARIANTS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--b-init", default="class_means", choices=["class_means", "random"],
                    help="class_means (default) keeps the code-faithful W finite within a few hundred steps; "
                         "with random B the 1e10 failure flag persists for many steps (reported per seed)")
    ap.add_argument("--no-pair", action="store_true", help="skip the mini-pair timing")
    ap.add_argument("--device", default=None,
                    help="torch device of the fast schedule (default: the GPU when there is one, else the CPU); "
                         "the reference schedule and h_R run on the CPU")
    args = ap.parse_args()
    if args.mode == "converge":
        results = [bench_converge(name, SIZES[name], args.original_cap, args.seed, args.device)
                   for name in args.converge_sizes]
        if args.out:
            import json
            from pathlib import Path
            Path(args.out).write_text(json.dumps(results, indent=1, default=float))
        return
    for name in args.sizes:
        bench_size(name, SIZES[name], args.steps or SIZES[name]["steps"], args.variants, args.seeds, args.b_init,
                   args.device)
    if not args.no_pair:
        bench_mini_pair(["fast"], args.device)


if __name__ == "__main__":
    main()
