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
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from cpoison.errors import CpoisonError

if TYPE_CHECKING:
    from cpoison.experiments.config import ExperimentConfig

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


# The attack goals (cpoison.attacks.GOAL_KINDS; tests/test_cli.py checks they agree) and the
# scales of `cpoison reproduce` (cpoison.reproduce.SCALES), spelled out here so that
# `cpoison --help` does not import torch.
GOALS = ("overconfidence", "underconfidence", "unequal-coverage", "add-label", "remove-label")
SCALES = ("cpu", "paper", "test")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, unless the help already states it or the
    default is nothing (``None``, off, empty)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if ("default" in text or not action.option_strings or default is argparse.SUPPRESS
                or default is None or default is False or default == []):
            return text
        return f"{text} (default: %(default)s)"


def _verbosity(top: bool) -> argparse.ArgumentParser:
    """-v / -q, accepted before the subcommand and after it (then the later one counts)."""
    p = argparse.ArgumentParser(add_help=False)
    group = p.add_argument_group("output")
    default = False if top else argparse.SUPPRESS
    group.add_argument("-v", "--verbose", action="store_true", default=default,
                       help="debug logging")
    group.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="no progress bars; log warnings and errors only")
    return p


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


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line naming what is wrong (``cpoison: error: ...``), exit 2."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("cpoison").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"cpoison: error: {where}{message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cpoison", description="Data poisoning attacks against conformal prediction. "
        "-v / -q work before the command and after it (cpoison -q attack ... or cpoison "
        "attack ... -q).", parents=[_verbosity(top=True)], formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)
    verbosity = _verbosity(top=False)

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[verbosity], formatter_class=_HelpFormatter,
                              **kwargs)

    p = command("data", help="locate (or download) a dataset and describe it")
    p.add_argument("name", help="fashion-mnist, cifar10, cifar100, tiny-imagenet or digits")
    p.add_argument("--data-root", default=None, help="folder holding the dataset files")
    p.add_argument("--no-download", action="store_true",
                   help="fail instead of downloading a dataset that is not found")

    p = command("configs", help="list the shipped configs, each with what it is for",
                description="The configs that ship with cpoison, by the name cpoison attack "
                "takes (configs/demo.yaml), each with the first sentence of its header "
                "comment. A file of your own at the same path takes precedence.")

    p = command("cp", help="train a model and report split-CP coverage and set size")
    p.add_argument("--dataset", default="fashion-mnist", help="a registry name (cpoison data)")
    p.add_argument("--model", default=None, help="architecture (default: the preset's)")
    p.add_argument("--preset", default="cpu", help="training preset: cpu, cpu-full or paper")
    p.add_argument("--alpha", type=float, default=0.1, help="miscoverage level in (0, 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--scores", default="hps,aps,raps", help="comma-separated score names")
    p.add_argument("--no-rscp", action="store_true", help="skip RSCP (noisy forward passes)")
    p.add_argument("--json", default=None, help="also write the results as JSON here")
    _add_common(p)

    dry_run_help = ("print the cells, the models to train and an estimated time, then stop "
                    "(nothing is trained or written)")
    p = command("attack", help="run (resume, extend) an experiment or grid from a config")
    p.add_argument("config", help="YAML config: a path, or a shipped one (cpoison configs "
                   "lists them)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a config value (dotted key)")
    p.add_argument("--out", required=True, help="output folder (re-running it resumes)")
    p.add_argument("--dry-run", action="store_true", help=dry_run_help)
    _add_common(p)
    _add_executor(p)

    p = command("demo", help="the main job on the embedded dataset (configs/demo.yaml)")
    p.add_argument("--config", default=None, help="config to run (default: configs/demo.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a config value (dotted key)")
    p.add_argument("--out", default="runs/demo", help="output folder (re-running it resumes)")
    p.add_argument("--dry-run", action="store_true", help=dry_run_help)
    _add_common(p)
    _add_executor(p)

    p = command(
        "audit", help="audit your own data and model: how far can a few poisoned training "
        "images move your conformal prediction sets?",
        description="Split your data between an attacker and your pipeline (its training and "
        "calibration sets, targets and evaluation set), run the black-box poisoning attack "
        "against your model's conformal pipeline for each score and budget, and write "
        "OUT/audit.md, which opens with a plain summary. Re-running resumes.")
    p.add_argument("--data", required=True,
                   help="an ImageFolder folder (one subfolder per class; train/ and test/ "
                   "subfolders optional), an .npz file (x, y[, x_test, y_test, classes]; x "
                   "[N, D] holds feature vectors) or a .csv file of feature vectors")
    p.add_argument("--label-column", default=None,
                   help="a CSV file's label column: its header name or index (default: the "
                   "last column)")
    p.add_argument("--model", required=True,
                   help="package.module:function or path/to/file.py:function returning an "
                   "nn.Module for (in_channels, num_classes, image_size), or for "
                   "(num_features, num_classes) on feature vectors; or a registry name "
                   "(mlp for feature vectors)")
    p.add_argument("--train-fn", default=None,
                   help="package.module:function or path/to/file.py:function training a "
                   "model: train_fn(model, train_set, generator) -> model, for the surrogate "
                   "and every victim (default: the preset's recipe)")
    p.add_argument("--surrogate-train-fn", default=None,
                   help="the attacker's training function, or 'cpoison' for the preset's "
                   "recipe (default: --train-fn)")
    p.add_argument("--predictor", default=None, metavar="PREDICTOR",
                   help="the conformal predictor that makes your pipeline's sets: cpoison, "
                   "torchcp or mapie, or package.module:function / path/to/file.py:function "
                   "naming a factory(score, alpha, generator) returning an object with "
                   "calibrate(logits, labels) and predict(logits) (default: cpoison, "
                   "cpoison's split CP)")
    p.add_argument("--weights", default=None,
                   help="initial weights (.safetensors) every model starts training from")
    p.add_argument("--surrogate", default=None,
                   help="the attacker's architecture (default: the same as --model)")
    p.add_argument("--surrogate-weights", default=None, help="its .safetensors weights")
    p.add_argument("--out", required=True, help="output folder (re-running it resumes)")
    p.add_argument("--alpha", type=float, default=0.1, help="miscoverage level in (0, 1)")
    p.add_argument("--budget", action="append", default=None, metavar="B",
                   help="share of the victim's training set poisoned; repeatable or a comma "
                   "list (0.01,0.02 or 1%%,2%%; default 0.01,0.02)")
    p.add_argument("--eps", default="16/255", help="L-inf bound of a perturbation")
    p.add_argument("--goal", default="overconfidence", choices=GOALS,
                   help="what the poisons do to the targets' sets")
    p.add_argument("--label", type=int, default=None,
                   help="add-label / remove-label: the class index of the label")
    p.add_argument("--scores", default="hps,aps,raps", help="comma-separated score names")
    p.add_argument("--victims", type=_positive_int, default=2,
                   help="victim pairs per budget (more: firmer numbers)")
    p.add_argument("--repeats", type=_positive_int, default=1,
                   help="repeats, each with its own target class (unless fixed) and seeds")
    p.add_argument("--target-class", type=int, default=None,
                   help="class of the targets (default: drawn with the seed)")
    p.add_argument("--targets", type=_positive_int, default=50, help="number of targets")
    p.add_argument("--baselines", default="randun",
                   help="random-noise baselines: randun, randga, a comma list, or none")
    p.add_argument("--selection", default=None, choices=("gradient-norm", "nearest", "random",
                                                         "nearest-pixels"),
                   help="poison bases: the largest training-gradient norm at the surrogate, "
                   "nearest to the targets in the surrogate's features, random, or nearest by "
                   "raw pixels (default: gradient-norm for overconfidence, else nearest)")
    p.add_argument("--iterations", type=_positive_int, default=150,
                   help="crafting iterations")
    p.add_argument("--preset", default="audit",
                   help="training recipe: audit (40 epochs) or audit-quick (10)")
    p.add_argument("--test-fraction", type=float, default=None,
                   help="share of each class held out as the test set when the data has "
                   "no test split (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--dry-run", action="store_true", help=dry_run_help)
    p.add_argument("--defense", dest="defenses", action="append", default=None,
                   metavar="NAME", help="run under this defense too (repeatable: --defense none "
                   "--defense deep_knn compares them)")
    _add_common(p)
    _add_executor(p)

    p = command(
        "reproduce", help="reproduce the paper's experiments E1-E7 and write one "
        "HTML + Markdown report beside the paper's figures",
        description="Run the shipped configs of the paper's experiments (all of E1-E7 when "
        "none is named) at a scale into OUT/<experiment>/ (normal run folders: re-running "
        "resumes), then write OUT/report.html (self-contained) and OUT/report.md.")
    p.add_argument("experiments", nargs="*", metavar="E",
                   help="experiment ids E1 ... E7 (default: all)")
    p.add_argument("--scale", default="cpu", choices=SCALES,
                   help="cpu (Fashion-MNIST, 4 victim pairs x 5 repeats, about 14 h on 2 "
                   "cores; resumable, and exported cells let other machines finish it), "
                   "paper (the paper's GPU presets) or test (digits, seconds)")
    p.add_argument("--out", required=True, help="output folder (re-running it resumes)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a value in every config (dotted key)")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild the report from the runs already in OUT; run nothing")
    _add_common(p)
    _add_executor(p)

    p = command("report", help="rebuild report.md, plots and summary.json of a run, "
                       "or of every run in a folder of exported cells (no training)")
    p.add_argument("run", help="run folder (holding config.resolved.yaml, results.sqlite) or "
                   "a folder written by cpoison export-cells")
    p.add_argument("--out", default=None,
                   help="folder of exported cells: write each run's report to OUT/NAME "
                   "(default: FOLDER/runs/NAME)")

    p = command(
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


def _cmd_configs(args: argparse.Namespace) -> int:
    from cpoison.resources import config_purpose, shipped_configs

    names = shipped_configs()
    width = max((len(n) for n in names), default=0)
    for name in names:
        print(f"{name:<{width}}  {config_purpose(name)}")
    print(f"\n{len(names)} configs; run one with cpoison attack CONFIG --out FOLDER "
          "(--dry-run first shows what it would train)")
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


# Seconds one model training takes on 2 CPU cores, per (dataset, preset) or per preset of any
# dataset (make demo: 9 trainings of the 2x512 MLP of fashion-mnist/cpu-full in about 5
# minutes with bf16, 10 in fp32; audit has its recipe, audit-quick a quarter of its epochs).
# Presets without a figure (the GPU presets) get no time estimate.
SECONDS_PER_TRAINING: dict[tuple[str, str] | str, float] = {
    ("fashion-mnist", "cpu-full"): 45.0, ("fashion-mnist", "cpu"): 20.0,
    ("digits", "cpu"): 2.0, "audit": 45.0, "audit-quick": 12.0}
# a poison set costs about as much as this many trainings to craft (first order, 150 steps)
CRAFTING_IN_TRAININGS = 2.0


def _dry_run(config: ExperimentConfig, out: str, kwargs: dict[str, Any]) -> int:
    """Print what a run of ``config`` into ``out`` would do; train and write nothing."""
    from cpoison.engine.grid import GridPoint, expand_grid
    from cpoison.engine.plan import cells_of, tasks_for
    from cpoison.engine.preflight import check_point
    from cpoison.engine.runtime import RunOptions, workspace_for
    from cpoison.experiments.store import ResultStore
    from cpoison.experiments.workspace import Workspace
    from cpoison.store.artifacts import split_stores

    written, layers = split_stores(kwargs["store"])
    if not kwargs["use_cache"]:
        written = str(Path(out) / "artifacts")
    opts = RunOptions(store=written, layers=layers, data_root=kwargs["data_root"],
                      device=kwargs["device"], progress=False,
                      any_device=bool(kwargs["any_device"]), threads=kwargs["threads"])
    points = expand_grid(config)
    spaces: dict[int, Workspace] = {}

    def workspace(point: GridPoint) -> Workspace:
        if id(point) not in spaces:
            spaces[id(point)] = workspace_for(opts, point.config)
        return spaces[id(point)]

    for point in points:
        check_point(workspace(point), point)
    cells = cells_of(points, workspace)
    done: set[str] = set()
    db_path = Path(out) / "results.sqlite"
    if db_path.exists():
        db = ResultStore(db_path)
        try:
            done = set(db.done_keys())
        finally:
            db.close()
    store = opts.artifact_store()
    pending = [c for c in cells if c.key not in done and not (
        isinstance(stored := store.get_json("cells", c.key), dict) and stored.get("rows"))]
    tasks = tasks_for(pending, points, opts, workspace)
    kinds = {k: sum(t.kind == k for t in tasks) for k in ("surrogate", "poisons", "benign",
                                                            "cell")}
    print(f"dry run: {config.name} into {out} (nothing is trained or written)")
    for i, point in enumerate(points):
        values = ", ".join(f"{k}={v}" for k, v in point.values.items()) or "the config"
        print(f"  grid point {i}: {values}")
    print(f"cells: {len(cells)} ({len(cells) - len(pending)} done, {len(pending)} to run)")
    for cell in pending[:40]:
        print(f"  repeat {cell.repeat}  victim {cell.victim}  point {cell.point}  "
              f"attack {cell.attack}")
    if len(pending) > 40:
        print(f"  ... and {len(pending) - 40} more")
    trainings = kinds["surrogate"] + kinds["benign"] + kinds["cell"]
    print(f"models to train: {trainings} ({kinds['surrogate']} surrogates, "
          f"{kinds['benign']} benign victims, {kinds['cell']} poisoned victims); "
          f"poison sets to craft: {kinds['poisons']}")
    presets = {(p.config.dataset, p.config.preset) for p in points}
    rates = [SECONDS_PER_TRAINING.get(key, SECONDS_PER_TRAINING.get(key[1]))
             for key in presets]
    names = ", ".join(sorted(f"{d}/{p}" for d, p in presets))
    if trainings + kinds["poisons"] == 0:
        print("estimated time: nothing left to compute (a few seconds for the report)")
    elif all(r is not None for r in rates):
        rate = max(r for r in rates if r is not None)
        seconds = rate * (trainings + CRAFTING_IN_TRAININGS * kinds["poisons"])
        print(f"estimated time: about {max(1, round(seconds / 60))} min on 2 CPU cores (about "
              f"{rate:.0f} s per model training of preset {names}, a poison set counted as "
              f"{CRAFTING_IN_TRAININGS:.0f} trainings; GPUs are faster)")
    else:
        print(f"estimated time: no figure for preset {names} (measured on CPU presets only)")
    return 0


def _cmd_attack(args: argparse.Namespace) -> int:
    from cpoison.api.runner import run_from_config

    if args.dry_run:
        from cpoison.experiments.config import load_config

        return _dry_run(load_config(args.config, args.overrides), args.out, _run_kwargs(args))
    run_from_config(args.config, args.overrides, args.out, **_run_kwargs(args))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from cpoison.api.runner import DEMO_CONFIG, run_from_config

    if args.dry_run:
        from cpoison.experiments.config import load_config

        config = load_config(args.config or DEMO_CONFIG, args.overrides)
        return _dry_run(config, args.out, _run_kwargs(args))
    run_from_config(args.config or DEMO_CONFIG, args.overrides, args.out, **_run_kwargs(args))
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from cpoison.api.audit import DEFAULT_BUDGETS, audit

    kwargs = _run_kwargs(args)
    settings: dict[str, Any] = dict(
        weights=args.weights, surrogate=args.surrogate,
        surrogate_weights=args.surrogate_weights, alpha=args.alpha,
        budgets=args.budget or list(DEFAULT_BUDGETS), eps=args.eps, goal=args.goal,
        label=args.label, scores=args.scores, victims=args.victims, repeats=args.repeats,
        target_class=args.target_class, targets=args.targets, baselines=args.baselines,
        selection=args.selection, iterations=args.iterations, preset=args.preset,
        test_fraction=args.test_fraction, seed=args.seed, defenses=args.defenses,
        train_fn=args.train_fn, surrogate_train_fn=args.surrogate_train_fn,
        label_column=args.label_column, predictor=args.predictor)
    if args.dry_run:  # the audit's config, from the path as the audit reads it
        from cpoison.api.audit import _data_path, audit_config

        path = _data_path(args.data, Path(args.out), args.test_fraction, args.seed)
        return _dry_run(audit_config(path, args.model, **settings), args.out, kwargs)
    kwargs.pop("data_root", None)
    result = audit(args.data, args.model, args.out, **settings, **kwargs)
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
    from cpoison.reproduce import cells as reproduction

    if reproduction.is_reproduction_cells(args.run):
        for path in reproduction.report_from_cells(args.run, args.out or args.run):
            print(f"wrote {path}")
        return 0
    if is_cells_folder(args.run):
        for path in report_from_cells(args.run, args.out):
            print(f"wrote {path}")
        return 0
    print(f"wrote {report_from_run(args.run)}")
    return 0


def _cmd_export_cells(args: argparse.Namespace) -> int:
    from cpoison.engine.cells import export_cells

    run = Path(args.run)
    if (run / "reproduce.json").is_file() and not (run / "config.resolved.yaml").is_file():
        from cpoison.reproduce.cells import export_reproduction

        counts = export_reproduction(run, args.folder)
        print(f"exported the reproduction's parts to {args.folder}: " + ", ".join(
            f"{name} {n} cells" for name, n in counts.items()))
        return 0
    done = export_cells(args.run, args.folder, args.name)
    print(f"exported {done.written} cells ({done.unchanged} already there) to {done.folder} "
          f"as run {done.name}")
    return 0


COMMANDS = {"data": _cmd_data, "configs": _cmd_configs, "cp": _cmd_cp, "attack": _cmd_attack,
            "demo": _cmd_demo,
            "audit": _cmd_audit, "reproduce": _cmd_reproduce, "report": _cmd_report,
            "export-cells": _cmd_export_cells}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cpoison`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.verbose and args.quiet:
        parser.error("-v (debug logging) and -q (warnings only) exclude each other")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
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
