"""Fast vs reference schedule of task_relatedness, side by side on the same synthetic inputs.

    .venv/bin/python benchmarks/bench_relatedness.py --steps 20          # a few minutes
    .venv/bin/python benchmarks/bench_relatedness.py --steps 2001 --sizes pets

Prints, per size: seconds per transformation step of each schedule, their ratio, and the relative
difference of the value and of each term (both schedules draw the same batches from the same
seed and share h_R, so the differences are those of the reformulations). Not a test.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from taskrel_utils.reference_classifier import train_reference_classifier
from taskrel_utils.relatedness import task_relatedness

SIZES = {  # name: d, K, reference train, target train, test per side, batch, scale
    "pets": dict(d=512, K=37, n_ref=3700, n_tgt=3680, n_test=1850, batch=1500, scale="large"),
    "mini200": dict(d=200, K=10, n_ref=4000, n_tgt=1500, n_test=1000, batch=500, scale="small"),
    "mini1280": dict(d=1280, K=10, n_ref=4000, n_tgt=2000, n_test=1000, batch=500, scale="small"),
}
TERMS = ("reweighted_reference_loss", "label_mismatch", "distribution_mismatch", "wasserstein", "tau",
         "wasserstein_theorem", "target_cross_entropy")


def synthetic(d, K, n_ref, n_tgt, n_test, seed=0):
    """Gaussian classes (a random low-rank class structure in d dimensions) and a planted affine
    copy with permuted labels and a shifted prior (METHOD 10, scaled up)."""
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="transformation steps per fit (paper: 2001 / 1001)")
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--hr-iterations", type=int, default=300, help="h_R iterations (shared by both schedules)")
    ap.add_argument("--ot", default="class", choices=["class", "full"], help="fast schedule's OT")
    args = ap.parse_args()
    for name in args.sizes:
        sz = SIZES[name]
        R, R_te, T, T_te = synthetic(sz["d"], sz["K"], sz["n_ref"], sz["n_tgt"], sz["n_test"])
        X = (R[0] - R[0].mean(0)) / R[0].std(0)
        t0 = time.perf_counter()
        h_R = train_reference_classifier(X, R[1], sz["K"], scale=sz["scale"], iterations=args.hr_iterations,
                                         optimizer="adam", lr=1e-2, weight_decay=0.0, tau0=0.2)
        t_h = time.perf_counter() - t0
        res = {}
        for sched in ("reference", "fast"):
            t0 = time.perf_counter()
            res[sched] = task_relatedness(R, R_te, T, T_te, schedule=sched, seed=0, scale=sz["scale"],
                                          reference_classifier=h_R, steps=args.steps, batch_size=sz["batch"],
                                          log_every=0, ot=args.ot)
            res[sched].timings["wall"] = time.perf_counter() - t0
        r, f = res["reference"], res["fast"]
        sr, sf = r.timings["transformations"] / args.steps, f.timings["transformations"] / args.steps
        print(f"\n== {name}: d={sz['d']} K={sz['K']} batch={sz['batch']} steps={args.steps} "
              f"(h_R {args.hr_iterations} it: {t_h:.1f} s, shared)")
        print(f"  s/step   reference {sr:.4f}   fast {sf:.4f}   ratio {sr / sf:.1f}x")
        print(f"  fit (loop+eval) reference {r.timings['transformations'] + r.timings['evaluation']:.1f} s"
              f"   fast {f.timings['transformations'] + f.timings['evaluation']:.1f} s")
        print(f"  {'quantity':28s} {'reference':>12s} {'fast':>12s} {'rel.diff':>10s}")
        rows = [("value", r.value, f.value)] + [(k, r.terms.get(k, np.nan) if k != "target_cross_entropy"
                                                 else r.target_cross_entropy,
                                                 f.terms.get(k, np.nan) if k != "target_cross_entropy"
                                                 else f.target_cross_entropy) for k in TERMS]
        for k, a, b in rows:
            print(f"  {k:28s} {a:12.5f} {b:12.5f} {abs(a - b) / max(abs(a), 1e-12):10.2e}")
        print(f"  max |B_ref - B_fast| {np.abs(r.B - f.B).max():.2e}   max |A_ref - A_fast| {np.abs(r.A - f.A).max():.2e}")


if __name__ == "__main__":
    main()
