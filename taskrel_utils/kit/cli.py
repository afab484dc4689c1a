"""Command line of the kit: ``python -m taskrel_utils <command>``.

    setup [--venv .venv] [--requirements FILE] [-n]      the Makefile's targets, without make (Windows):
    reproduce [--profile mini] [setup's options]          each creates and installs the environment first,
    test [setup's options]                                as make does (taskrel_utils.kit.workflow)
    lab [--student] [setup's options]
    lab-settings [--prefix DIR]                           JupyterLab without the news pop-up (setup runs it)
    run --profile PROFILE [--run-dir DIR] [-p NAME VALUE ...] [--notebooks 01 02] [--scheduler ADDRESS]
    report EXECUTED.ipynb|RUN_DIR [--out DIR]
    student [--out DIR] [--notebooks 01 02]
    data build-mini --source DIR
    data make-dryrun --out DIR [--size smoke|full] [--seed 0]
    zoo build [--names NAME|NAME@OPTION=VALUE ...] [--jobs N] | zoo verify | zoo check [--names ...]
    ground-truth build --profile mini [--seeds N] [--contrast-seeds N] [--selection-seeds N] [--jobs N] [--out CSV]
    ground-truth check --profile mini [--out CSV] [--verify N]
    check-run RUN_DIR [--reference JSON] [--record]
    layers [--modules]
    list tasks|encoders|profiles
"""
from __future__ import annotations

import argparse
import sys

from ..core.errors import TaskrelError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m taskrel_utils", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    _workflow_parsers(sub)

    run = sub.add_parser("run", help="run the notebooks with papermill into a run directory")
    run.add_argument("--profile", default="mini", help="a profile of `list profiles` (default: mini)")
    run.add_argument("--run-dir", default=None, help="default: runs/<profile>")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="override a notebook parameter (VALUE is parsed as YAML)")
    run.add_argument("--notebooks", nargs="*", default=None, help="notebook numbers or paths (default: all)")
    run.add_argument("--no-report", action="store_true", help="skip the HTML reports")
    run.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="send the jobs of every table to this Dask scheduler (tcp://host:8786), or 'local' "
                          "for a LocalCluster of this machine (default: TASKREL_SCHEDULER, else local processes)")

    rep = sub.add_parser("report", help="render an executed notebook (or all of a run) to HTML, and the run's index.html")
    rep.add_argument("notebook", help="an executed notebook, or a run directory (all its executed notebooks)")
    rep.add_argument("--out", default=None, help="default: the run's report/ folder")

    stu = sub.add_parser("student", help="write student copies of the notebooks, without the solution cells")
    stu.add_argument("--out", default="student", help="default: student/")
    stu.add_argument("--notebooks", nargs="*", default=None, help="notebook numbers or paths (default: all)")

    data = sub.add_parser("data", help="data bundle commands")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    build = data_sub.add_parser("build-mini", help="build data/mini/ from the raw source files")
    build.add_argument("--source", default=None, help="folder with fashion-mnist/ and opencv-digits/")
    build.add_argument("--out", default=None, help="default: data/mini")
    dry = data_sub.add_parser("make-dryrun", help="write synthetic stand-ins of ImageNet, Pets, DTD and Aircraft in "
                                                  "their on-disk formats (the paper-dryrun profiles)")
    dry.add_argument("--out", required=True, help="a new folder")
    dry.add_argument("--size", default="smoke", choices=["smoke", "full"],
                     help="smoke (default: a few classes, the paper-dryrun profile) or full (the paper's class "
                          "counts, the paper-dryrun-full profile)")
    dry.add_argument("--seed", type=int, default=0)

    zoo = sub.add_parser("zoo", help="the shipped in-kit CNN weights (data/zoo)")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True)
    zb = zoo_sub.add_parser("build", help="pre-train the zoo entries into data/zoo (minutes per entry)")
    zb.add_argument("--names", nargs="*", default=None,
                    help="what to rebuild (default: everything shipped): a zoo entry's name rebuilds its default "
                         "spec and its shipped variants (lenet-reference also rebuilds lenet-reference@epochs=1 and the "
                         "others), a variant key (lenet-reference@epochs=1) only that variant")
    zb.add_argument("--jobs", type=int, default=2, help="parallel processes (default 2)")
    zoo_sub.add_parser("verify", help="check data/zoo against its MANIFEST.json")
    zc = zoo_sub.add_parser("check", help="retrain shipped entries here and compare them with data/zoo: the same bytes "
                                          "on the machine that built them, elsewhere within the rebuild tolerance")
    zc.add_argument("--names", nargs="*", default=["lenet-1k"],
                    help="shipped keys to retrain (default: lenet-1k, about 10 s; a zoo entry's name checks its "
                         "variants too)")
    gt = sub.add_parser("ground-truth", help="the fine-tuned ground truth of a profile (computed once, shipped as CSV)")
    gt_sub = gt.add_subparsers(dest="gt_command", required=True)
    for name, help_text in (("build", "fine-tune every (encoder, target) under several seeds with a protocol "
                                      "chosen on a validation split; write the CSV and its provenance"),
                            ("check", "validate the CSV against the profile (and recompute a few runs)")):
        g = gt_sub.add_parser(name, help=help_text)
        g.add_argument("--profile", default="mini", help="a profile of `list profiles` (default: mini)")
        g.add_argument("--out", default=None, help="the CSV (default: data/ground_truth/<profile>.csv)")
        g.add_argument("--encoders", nargs="*", default=None, help="default: the profile's encoders")
        g.add_argument("--targets", nargs="*", default=None, help="default: the profile's targets")
        if name == "build":
            g.add_argument("--seeds", type=int, default=None, help="seeds per main-zoo pair (default: the profile's ground_truth.seeds)")
            g.add_argument("--contrast-seeds", type=int, default=None, help="seeds per contrast pair (default: the profile's ground_truth.contrast_seeds, else --seeds)")
            g.add_argument("--selection-seeds", type=int, default=None, help="seeds per protocol on validation (default: the profile's ground_truth.selection_seeds)")
            g.add_argument("--jobs", type=int, default=None,
                           help="worker processes (default: TASKREL_JOBS, else as many as the CPUs and the memory allow)")
        else:
            g.add_argument("--verify", type=int, default=0, metavar="N", help="recompute N runs and compare")

    chk = sub.add_parser("check-run", help="compare a run's key numbers with the recorded reference run of its profile "
                                           "(data/reference_runs) within the cross-machine tolerance")
    chk.add_argument("run_dir", help="a run directory, e.g. runs/mini")
    chk.add_argument("--reference", default=None, help="the reference JSON (default: data/reference_runs/<profile>.json)")
    chk.add_argument("--record", action="store_true", help="record this run as the reference instead of comparing")
    lay = sub.add_parser("layers", help="print the imports between the package's layers (core, method, inputs, "
                                        "study, present, kit) and whether they point down only, without cycles")
    lay.add_argument("--modules", action="store_true", help="also every module's imports of the package")
    lst = sub.add_parser("list", help="list valid names")
    lst.add_argument("what", choices=["tasks", "encoders", "profiles"])
    return p


def _workflow_parsers(sub) -> None:
    """setup, reproduce, test, lab: the Makefile's targets for machines without make (Windows)."""
    from . import workflow

    def with_setup_options(name, help_text):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--venv", default=workflow.VENV, help=f"the virtual environment (default: {workflow.VENV})")
        cmd.add_argument("--requirements", default=workflow.REQUIREMENTS,
                         help="the pinned packages (default: requirements.txt; laptops without an NVIDIA GPU: "
                              "requirements-cpu.txt, the CPU build of torch)")
        cmd.add_argument("-n", "--dry-run", action="store_true", help="print the commands without running them (make -n)")
        return cmd

    with_setup_options("setup", "= make setup: create the environment (with the Python running this command), "
                                "install the pins and the kit, register the 'taskrel' kernel, install the lab settings")
    rep = with_setup_options("reproduce", "= make reproduce: setup, then every notebook on the mini profile into "
                                          "runs/mini with the HTML reports")
    rep.add_argument("--profile", default=workflow.PROFILE, help=f"default: {workflow.PROFILE}")
    with_setup_options("test", "= make test: setup, then the unit, hygiene and notebook tests, offline")
    lab = with_setup_options("lab", "= make lab: setup, then JupyterLab on notebooks/ (as root with --allow-root)")
    lab.add_argument("--student", action="store_true",
                     help="= make lab STUDENT=1: rebuild the student copies (no solution cells) into student/ and open those")
    ls = sub.add_parser("lab-settings", help="install the kit's JupyterLab settings (no news pop-up, no update check) "
                                             "into this Python's JupyterLab; setup runs it")
    ls.add_argument("--prefix", default=None, help="another environment's folder (default: this Python's)")


def _workflow(args) -> int:
    from . import workflow

    if args.command == "lab-settings":
        print(f"wrote {workflow.write_lab_settings(args.prefix)}")
        return 0
    options = {"venv": args.venv, "requirements": args.requirements, "dry_run": args.dry_run}
    if args.command == "setup":
        workflow.setup(**options)
    elif args.command == "reproduce":
        workflow.reproduce(args.profile, **options)
    elif args.command == "test":
        workflow.test(**options)
    else:
        workflow.lab(student=args.student, **options)
    return 0


def _parameter_value(name: str, text: str):
    """The value of ``-p NAME TEXT``: TEXT read as YAML (``3``, ``0.5``, ``[a, b]``, ``true``, ``null``)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise TaskrelError(f"-p {name} {text!r}: not a YAML value ({getattr(e, 'problem', None) or e}); write a list "
                           f"as '[a, b]' (brackets closed), text with : or # in quotes") from None


def _notebook_paths(selection):
    from .pipeline import list_notebooks

    if not selection:
        return None
    all_nbs = list_notebooks()
    chosen = []
    for item in selection:
        match = [p for p in all_nbs if p.name.startswith(item) or str(p) == item or p.stem == item]
        if not match:
            raise TaskrelError(f"no notebook matches {item!r}; notebooks are: {', '.join(p.name for p in all_nbs)}")
        chosen.extend(match)
    return chosen


def _report(given, out=None) -> None:
    """Render an executed notebook, or every executed notebook of a run directory, and the run's index."""
    from pathlib import Path

    from .report import render_html
    from .report_index import write_index

    given = Path(given)
    if not given.exists():
        raise TaskrelError(f"{given} does not exist: give an executed notebook (runs/<profile>/executed/"
                           f"NN_name.ipynb) or a run directory (runs/<profile>)")
    run_root = given if given.is_dir() else given.parent.parent
    notebooks = (sorted(p for p in (given / "executed").glob("[0-9][0-9]_*.ipynb")
                        if not p.name.endswith(".failed.ipynb")) if given.is_dir() else [given])
    if not notebooks:
        raise TaskrelError(f"no executed notebooks in {given / 'executed'}: run the notebooks first "
                           f"(python -m taskrel_utils run --run-dir {given})")
    out = Path(out) if out else run_root / "report"
    for nb in notebooks:
        print(render_html(nb, out))
    print(write_index(run_root, out))


def _zoo_check(names) -> int:
    """Retrain shipped keys ``names`` and print how each compares with its shipped file; 1 when one
    misses the promise of this machine (the bytes on the build machine, else the tolerance)."""
    from ..inputs import cnn_zoo, zoo_build

    failed = 0
    for key in zoo_build.build_keys(names):
        name, options = zoo_build.SHIPPED_KEYS[key]
        _, payload, seconds = cnn_zoo.train_checkpoint(name, cnn_zoo.resolve_spec(name, **options), progress=False)
        a = zoo_build.rebuild_agreement(key, payload)
        build_cpu = a["on_build_machine"]
        ok = a["same_bytes"] if build_cpu else a["within_tolerance"]
        failed += not ok
        promise = "same bytes (this is the CPU that built it)" if build_cpu else "within tolerance (another CPU)"
        print(f"{key}: {'OK' if ok else 'FAILED'}, expected {promise}: same bytes {a['same_bytes']}, tensors "
              f"{a['weights']:.1e}, features {a['features']:.1e}, head accuracy {a['accuracy_rebuilt']:.3f} "
              f"(shipped {a['accuracy_shipped']:.3f}); retrained in {seconds:.0f} s")
    print(f"tolerance: {zoo_build.REBUILD_TOLERANCE}; this machine: {zoo_build.build_machine()}")
    return int(failed > 0)


def _check_run(run_dir, reference=None, record=False) -> int:
    """Print how a run's key numbers compare with the reference run; 1 when one is outside the tolerance."""
    from ..study import reference_run

    if record:
        print(f"recorded {reference_run.record(run_dir, reference)}")
        return 0
    table = reference_run.compare(run_dir, reference)
    bad = table[~table.ok]
    print(f"{run_dir}: {len(table) - len(bad)} of {len(table)} key numbers within the tolerance of the reference run "
          f"({reference_run.TOLERANCE})")
    if len(bad):
        print("outside it (a different result, not the last digits of another CPU):")
        print(bad.to_string(index=False))
        return 1
    print("same result")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("setup", "reproduce", "test", "lab", "lab-settings"):
        return _workflow(args)
    try:
        if args.command == "run":
            from .pipeline import run_notebooks

            params = {name: _parameter_value(name, value) for name, value in args.parameter}
            run = run_notebooks(args.profile, run_dir=args.run_dir, parameters=params,
                                notebooks=_notebook_paths(args.notebooks), render=not args.no_report,
                                scheduler=args.scheduler)
            print(f"run finished: {run.root}")
        elif args.command == "report":
            _report(args.notebook, args.out)
        elif args.command == "data" and args.data_command == "make-dryrun":
            from ..inputs.dryrun import make_dryrun

            out = make_dryrun(args.out, size=args.size, seed=args.seed).resolve()
            print(f"wrote the {args.size} stand-ins to {out}; run with\n"
                  f"  IMAGENET_ROOT={out / 'imagenet'} TASKREL_DATA_ROOT={out} python -m taskrel_utils run "
                  f"--profile {'paper-dryrun' if args.size == 'smoke' else 'paper-dryrun-full'}")
        elif args.command == "student":
            from .student import write_student_copies

            for path in write_student_copies(args.out, _notebook_paths(args.notebooks)):
                print(path)
        elif args.command == "data":
            from pathlib import Path

            from ..inputs import bundle
            from ..core.paths import MINI_DIR

            bundle.build_mini(Path(args.source) if args.source else None, Path(args.out) if args.out else MINI_DIR)
        elif args.command == "zoo":
            from ..inputs import zoo_build

            if args.zoo_command == "build":
                manifest = zoo_build.build_shipped(args.names, n_jobs=args.jobs)
                print(f"wrote data/zoo ({manifest['total_bytes']} bytes, {manifest['last_build_seconds']} s)")
            elif args.zoo_command == "check":
                return _zoo_check(args.names)
            else:
                for name, sha in zoo_build.verify_shipped().items():
                    print(f"{sha}  {name}  OK")
        elif args.command == "ground-truth":
            from ..study.ground_truth import main_cli

            words = sys.argv[1:] if argv is None else list(argv)
            return main_cli(args, command="python -m taskrel_utils " + " ".join(words))
        elif args.command == "check-run":
            return _check_run(args.run_dir, args.reference, args.record)
        elif args.command == "layers":
            from .layers import report

            print(report(modules=args.modules))
            return 0
        elif args.command == "list":
            if args.what == "profiles":
                from ..study.config import list_profiles as names
            elif args.what == "tasks":
                from ..inputs.data import list_tasks as names
            else:
                from ..inputs.encoders import list_encoders as names
            print("\n".join(names()))
    except TaskrelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
