"""Command-line interface: ``cpoison data | cp | attack | demo | audit | reproduce | report``.

User errors (:class:`~cpoison.errors.CpoisonError`, invalid config values) print one line
``cpoison: error: ...`` on stderr and exit with code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence

from cpoison.errors import CpoisonError

log = logging.getLogger("cpoison")


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse reports anything else in one line)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _non_negative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{value} must be at least 0")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None, help="folder holding the dataset files")
    p.add_argument("--store", "--cache-dir", dest="store", action="append", default=None,
                   help="artifact store for models, poisons and cells: a folder or an fsspec "
                   "URL every worker reaches (default $CPOISON_CACHE or ~/.cache/cpoison); "
                   "repeat it to add stores that are only read, such as a folder of cells "
                   "from cpoison export-cells (the first is written)")
    p.add_argument("--no-cache", action="store_true",
                   help="train every model afresh (artifacts go to OUT/artifacts)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps or auto (default)")
    p.add_argument("--any-device", action="store_true",
                   help="reuse stored models trained on another device type (off: a model "
                   "trained on a GPU is not served to a CPU run, nor the reverse)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="torch threads per unit of work (default: torch's; Ray: CPUs per task)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_executor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="local (in this process) or ray")
    p.add_argument("--address", default=None,
                   help="Ray: none starts a local Ray; 'auto' or ray://HOST:PORT joins a cluster")
    p.add_argument("--cpus-per-task", type=_non_negative_float, default=1.0,
                   help="Ray: CPUs per task")
    p.add_argument("--gpus-per-task", type=_non_negative_float, default=0.0,
                   help="Ray: GPUs per task")
    p.add_argument("--num-cpus", type=_positive_int, default=None,
                   help="Ray: CPUs of the local Ray it starts (default: all)")


def _version() -> str:
    from cpoison import __version__

    return f"cpoison {__version__}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cpoison", description="Data poisoning attacks against conformal prediction."
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="locate (or download) a dataset and describe it")
    p.add_argument("name", help="fashion-mnist, cifar10, cifar100, tiny-imagenet, digits")
    p.add_argument("--data-root", default=None)
    p.add_argument("--no-download", action="store_true")

    p = sub.add_parser("cp", help="train a model and report split-CP coverage and set size")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--model", default=None, help="architecture (default: the preset's)")
    p.add_argument("--preset", default="cpu", help="cpu or paper")
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scores", default="hps,aps,raps", help="comma-separated score names")
    p.add_argument("--no-rscp", action="store_true", help="skip RSCP (noisy forward passes)")
    p.add_argument("--json", default=None, help="also write the results as JSON here")
    _add_common(p)

    p = sub.add_parser("attack", help="run (resume, extend) an experiment or grid from a config")
    p.add_argument("config", help="YAML config: a path, or a shipped one (configs/demo.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a config value (dotted key)")
    p.add_argument("--out", required=True, help="output folder (re-running it resumes)")
    _add_common(p)
    _add_executor(p)

    p = sub.add_parser("demo", help="the main job on the embedded dataset (configs/demo.yaml)")
    p.add_argument("--config", default=None, help="config to run (default: configs/demo.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a config value (dotted key)")
    p.add_argument("--out", default="runs/demo")
    _add_common(p)
    _add_executor(p)

    p = sub.add_parser(
        "audit", help="audit your own data and model: how far can a few poisoned training "
        "images move your conformal prediction sets? (SPEC 12)",
        description="Split your data into the roles of SPEC 2, run the black-box poisoning "
        "attack against your model's conformal pipeline for each score and budget, and write "
        "OUT/audit.md, which opens with a plain summary. Re-running resumes.")
    p.add_argument("--data", required=True,
                   help="an ImageFolder folder (one subfolder per class; train/ and test/ "
                   "subfolders optional) or an .npz file (x, y[, x_test, y_test, classes])")
    p.add_argument("--model", required=True,
                   help="package.module:function or path/to/file.py:function returning an "
                   "nn.Module for (in_channels, num_classes, image_size); or a registry name")
    p.add_argument("--weights", default=None,
                   help="initial weights (.safetensors) every model starts training from")
    p.add_argument("--surrogate", default=None,
                   help="the attacker's architecture (default: the same as --model)")
    p.add_argument("--surrogate-weights", default=None, help="its .safetensors weights")
    p.add_argument("--out", required=True, help="output folder (re-running it resumes)")
    p.add_argument("--alpha", type=float, default=0.1, help="miscoverage level (default 0.1)")
    p.add_argument("--budget", action="append", default=None, metavar="B",
                   help="share of the victim's training set poisoned; repeatable or a comma "
                   "list (0.01,0.02 or 1%%,2%%; default 0.01,0.02)")
    p.add_argument("--eps", default="16/255", help="L-inf bound of a perturbation (16/255)")
    p.add_argument("--goal", default="overconfidence",
                   help="overconfidence (default), underconfidence, unequal-coverage, "
                   "add-label, remove-label")
    p.add_argument("--label", type=int, default=None,
                   help="add-label / remove-label: the class index of the label")
    p.add_argument("--scores", default="hps,aps,raps", help="comma-separated score names")
    p.add_argument("--victims", type=_positive_int, default=2,
                   help="victim pairs per budget (default 2; more: firmer numbers)")
    p.add_argument("--repeats", type=_positive_int, default=1,
                   help="repeats, each with its own target class (unless fixed) and seeds")
    p.add_argument("--target-class", type=int, default=None,
                   help="class of the targets (default: drawn with the seed)")
    p.add_argument("--targets", type=_positive_int, default=50,
                   help="number of targets (default 50)")
    p.add_argument("--baselines", default="randun",
                   help="random-noise baselines: randun, randga, a comma list, or none")
    p.add_argument("--selection", default="nearest", choices=("nearest", "random",
                                                              "nearest-pixels"),
                   help="poison bases: nearest to the targets (default) or random")
    p.add_argument("--iterations", type=_positive_int, default=150,
                   help="crafting iterations (150)")
    p.add_argument("--preset", default="audit",
                   help="training recipe: audit (default, 40 epochs) or audit-quick (10)")
    p.add_argument("--test-fraction", type=float, default=None,
                   help="share of each class held out as the test set when the data has "
                   "no test split (default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--defense", dest="defenses", action="append", default=None,
                   metavar="NAME", help="run under this defense too (repeatable: --defense none "
                   "--defense deep_knn compares them)")
    _add_common(p)
    _add_executor(p)

    p = sub.add_parser(
        "reproduce", help="reproduce the paper's experiments E1-E7 (SPEC 9) and write one "
        "HTML + Markdown report beside the paper's figures",
        description="Run the shipped configs of the paper's experiments (all of E1-E7 when "
        "none is named) at a scale into OUT/<experiment>/ (normal run folders: re-running "
        "resumes), then write OUT/report.html (self-contained) and OUT/report.md.")
    p.add_argument("experiments", nargs="*", metavar="E",
                   help="experiment ids E1 ... E7 (default: all)")
    p.add_argument("--scale", default="cpu",
                   help="cpu (Fashion-MNIST, under 2 h on 2 cores; default), paper (the "
                   "paper's GPU presets) or test (digits, seconds)")
    p.add_argument("--out", required=True, help="output folder (re-running it resumes)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a value in every config (dotted key)")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild the report from the runs already in OUT; run nothing")
    _add_common(p)
    _add_executor(p)

    p = sub.add_parser("report", help="rebuild report.md, plots and summary.json of a run, "
                       "or of every run in a folder of exported cells (no training)")
    p.add_argument("run", help="run folder (holding config.resolved.yaml, results.sqlite) or "
                   "a folder written by cpoison export-cells")
    p.add_argument("--out", default=None,
                   help="folder of exported cells: write each run's report to OUT/NAME "
                   "(default: FOLDER/runs/NAME)")

    p = sub.add_parser(
        "export-cells", help="export a run's evaluated cells (no models) to a folder that "
        "other runs read with --store and cpoison report rebuilds a report from",
        description="Write every evaluated cell of RUN (small JSON files named by their "
        "content keys) into FOLDER/cells/, and RUN's config and plan into FOLDER/runs/NAME/. "
        "Commit or share the folder; a run given --store STORE --store FOLDER reuses its "
        "cells and computes only the missing ones.")
    p.add_argument("run", help="run folder (holding config.resolved.yaml, results.sqlite)")
    p.add_argument("folder", help="folder (or fsspec URL) to write the cells into")
    p.add_argument("--name", default=None, help="the run's name in FOLDER/runs/ (default: "
                   "the run folder's name)")
    return parser


def _run_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """Keyword arguments of run_experiment from the flags."""
    kwargs: dict[str, object] = {
        "data_root": args.data_root, "store": args.store, "use_cache": not args.no_cache,
        "device": args.device, "progress": not args.quiet, "any_device": args.any_device,
        "threads": args.threads,
    }
    if hasattr(args, "executor"):
        kwargs["executor"] = args.executor
        kwargs["executor_options"] = {
            "address": args.address, "cpus_per_task": args.cpus_per_task,
            "gpus_per_task": args.gpus_per_task, "num_cpus": args.num_cpus}
    return kwargs


def _cmd_data(args: argparse.Namespace) -> int:
    from cpoison.data import load_dataset

    ds = load_dataset(args.name, root=args.data_root, download=not args.no_download)
    print(f"{ds.name}: {ds.train_labels.numel()} train + {ds.test_labels.numel()} test images, "
          f"shape {tuple(ds.input_shape)}, {ds.num_classes} classes")
    return 0


def _cmd_cp(args: argparse.Namespace) -> int:
    from cpoison.conformal.quantile import check_alpha
    from cpoison.conformal.scores import build_score
    from cpoison.experiments.baseline import run_cp_baseline
    from cpoison.experiments.presets import get_preset
    from cpoison.experiments.workspace import Workspace
    from cpoison.io import atomic_write_json, check_writable_file

    check_alpha(args.alpha)
    if args.json:  # a bad --json path must fail now, not after the model has trained
        check_writable_file(args.json, "--json")
    scores = tuple(s.strip().lower() for s in args.scores.split(",") if s.strip())
    for name in scores:  # a typo must fail before the model is trained, not after
        build_score(name)
    preset = get_preset(args.dataset, args.preset)
    if args.model and args.model != preset.model:
        preset = preset.model_copy(update={"model": args.model, "model_kwargs": {}})
    ws = Workspace.open(preset, seed=args.seed, data_root=args.data_root, store=args.store,
                        use_cache=not args.no_cache, device=args.device,
                        progress=not args.quiet)
    result = run_cp_baseline(ws, alpha=args.alpha, seed=args.seed, scores=scores,
                             rscp=not args.no_rscp)
    print(f"{result['dataset']} / {result['model']}: accuracy {result['accuracy']:.4f}, "
          f"alpha {args.alpha}, {result['n_calibration']} calibration points, "
          f"{result['n_test']} test points")
    print(f"{'score':<6} {'coverage':>9} {'size':>7} {'empty':>7} {'threshold':>10}")
    for name, row in result["scores"].items():
        print(f"{name:<6} {row['coverage']:>9.4f} {row['mean_size']:>7.3f} "
              f"{row['empty_share']:>7.4f} {row['threshold']:>10.4f}")
    print(f"time {result['seconds']:.1f} s")
    if args.json:
        atomic_write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0


def _cmd_attack(args: argparse.Namespace) -> int:
    from cpoison.api.runner import run_from_config

    run_from_config(args.config, args.overrides, args.out, **_run_kwargs(args))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from cpoison.api.runner import DEMO_CONFIG, run_from_config

    run_from_config(args.config or DEMO_CONFIG, args.overrides, args.out, **_run_kwargs(args))
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from cpoison.api.audit import DEFAULT_BUDGETS, audit

    kwargs = _run_kwargs(args)
    kwargs.pop("data_root", None)
    result = audit(
        args.data, args.model, args.out, weights=args.weights, surrogate=args.surrogate,
        surrogate_weights=args.surrogate_weights, alpha=args.alpha,
        budgets=args.budget or list(DEFAULT_BUDGETS), eps=args.eps, goal=args.goal,
        label=args.label, scores=args.scores, victims=args.victims, repeats=args.repeats,
        target_class=args.target_class, targets=args.targets, baselines=args.baselines,
        selection=args.selection, iterations=args.iterations, preset=args.preset,
        test_fraction=args.test_fraction, seed=args.seed, defenses=args.defenses,
        **kwargs)
    print(result.text)
    print(f"audit: {result.report}; report: {result.out / 'report.md'}; results: "
          f"{result.out / 'results.sqlite'}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from cpoison.reproduce.run import reproduce

    kwargs = _run_kwargs(args)
    command = "cpoison reproduce " + " ".join(
        [*args.experiments, "--scale", args.scale, "--out", str(args.out)])
    manifest = reproduce(args.experiments, args.scale, args.out, overrides=args.overrides,
                         report_only=args.report_only, command=command, **kwargs)
    for label, err in manifest["failures"].items():
        print(f"cpoison: {label} failed: {err}", file=sys.stderr)
    print(f"report: {manifest['report_html']} and {manifest['report_md']}")
    return 1 if manifest["failures"] else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from cpoison.engine.cells import is_cells_folder, report_from_cells
    from cpoison.engine.driver import report_from_run

    if is_cells_folder(args.run):
        for path in report_from_cells(args.run, args.out):
            print(f"wrote {path}")
        return 0
    print(f"wrote {report_from_run(args.run)}")
    return 0


def _cmd_export_cells(args: argparse.Namespace) -> int:
    from cpoison.engine.cells import export_cells

    done = export_cells(args.run, args.folder, args.name)
    print(f"exported {done.written} cells ({done.unchanged} already there) to {done.folder} "
          f"as run {done.name}")
    return 0


COMMANDS = {"data": _cmd_data, "cp": _cmd_cp, "attack": _cmd_attack, "demo": _cmd_demo,
            "audit": _cmd_audit, "reproduce": _cmd_reproduce, "report": _cmd_report,
            "export-cells": _cmd_export_cells}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cpoison`` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    warnings.simplefilter("default")
    from pydantic import ValidationError

    try:
        return COMMANDS[args.command](args)
    except CpoisonError as err:
        print(f"cpoison: error: {err}", file=sys.stderr)
        return 2
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        print(f"cpoison: error: invalid value for {where}: {first['msg']}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cpoison: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
