"""The paper's experiments E1-E7 (SPEC 9) and their shipped configs at each scale.

Configs live in ``configs/reproduce/<scale>/`` (package data): ``E3.yaml`` is experiment E3
in one run, ``E1-<part>.yaml`` one part of E1 (a dataset, a goal, a setting), run into
``OUT/E1/<part>/``. The parts of an experiment are *discovered* from the file names, so a
new setting joins an experiment by adding a file: the transfer-learning setting (SPEC 9:
"from scratch and transfer" at CPU scale) becomes e.g. ``cpu/E1-transfer.yaml`` when the
transfer wiring lands, and its run, figure and claims follow without code changes.

E2 (paper Fig. 2, stealth) has no config of its own: the paper reads it from the
overconfidence runs of Fig. 1 (CIFAR-10, HPS), and so does :data:`EXPERIMENTS` (``source``).

Scales: ``paper`` (the paper's presets for a GPU: CIFAR-10 / CIFAR-100 / Tiny-ImageNet,
ResNet-18, 8 victims x 10 repeats), ``cpu`` (Fashion-MNIST, preset cpu-full, 4 victim pairs
x 5 repeats with targets with room: hours on 2 cores, most of it E3's defenses; each
config's header states its cost by :func:`estimate`, and a test checks it), ``test``
(scikit-learn digits, seconds; the tests' scale, its numbers mean nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpoison.errors import ConfigError
from cpoison.experiments.config import ExperimentConfig, load_config
from cpoison.resources import shipped_config_dir

SCALES = ("cpu", "paper", "test")


@dataclass(frozen=True)
class Experiment:
    """One experiment of SPEC 9: its id, what the paper shows, and where it reads its runs
    from (``source``: another experiment whose runs it draws, for E2)."""

    id: str
    paper: str
    title: str
    source: str | None = None


EXPERIMENTS: dict[str, Experiment] = {e.id: e for e in (
    Experiment("E1", "Fig. 1", "Attack performance against budget: set size reduction "
               "(overconfidence) and expansion (underconfidence) ratio, ours vs RandUn vs "
               "RandGa"),
    Experiment("E2", "Fig. 2", "Stealth: prediction consistency and empirical coverage, "
               "benign vs victim (overconfidence, read from E1)", source="E1"),
    Experiment("E3", "Table 1", "Reduction ratio under poisoning defenses at 2 %"),
    Experiment("E4", "Table 2", "First-order vs second-order vs MetaPoison: reduction ratio "
               "and running time"),
    Experiment("E5", "Fig. 3", "l2 vs l3 loss by budget (black box)"),
    Experiment("E6", "Fig. 4", "Reduction ratio against the benign set size at 2 %"),
    Experiment("E7", "Fig. 5", "Reduction ratio against the perturbation bound at 2 %"),
)}


@dataclass(frozen=True)
class Part:
    """One config (one run) of an experiment at a scale."""

    experiment: str
    name: str  # "" for a single-config experiment (E3.yaml), else "cifar10", "over", ...
    config_name: str  # as resolve_config takes it: "reproduce/cpu/E1-over.yaml"

    def folder(self, out: Path) -> Path:
        """The run folder: ``OUT/E3`` or ``OUT/E1/over``."""
        return out / self.experiment / self.name if self.name else out / self.experiment

    @property
    def label(self) -> str:
        return f"{self.experiment} {self.name}".strip()

    def load(self, overrides: list[str] | None = None) -> ExperimentConfig:
        return load_config(self.config_name, overrides)


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
    return scale


def select(names: list[str] | None) -> list[str]:
    """The experiment ids asked for (all when none), upper-cased, in E1..E7 order; a
    ConfigError names an unknown one."""
    if not names:
        return list(EXPERIMENTS)
    wanted = []
    for name in names:
        key = name.strip().upper()
        if key not in EXPERIMENTS:
            raise ConfigError(f"unknown experiment {name!r}; choose from "
                              f"{', '.join(EXPERIMENTS)}")
        wanted.append(key)
    return [e for e in EXPERIMENTS if e in wanted]


def parts(experiment: str, scale: str) -> list[Part]:
    """The configs of ``experiment`` at ``scale``, in file-name order (E2: none of its own)."""
    check_scale(scale)
    folder = shipped_config_dir().joinpath("reproduce", scale)
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        stem = entry.name.rsplit(".", 1)[0]
        if not entry.name.endswith(".yaml"):
            continue
        if stem == experiment:
            out.append(Part(experiment, "", f"reproduce/{scale}/{entry.name}"))
        elif stem.startswith(experiment + "-"):
            out.append(Part(experiment, stem[len(experiment) + 1:],
                            f"reproduce/{scale}/{entry.name}"))
    return out


def runs_needed(experiments: list[str], scale: str) -> list[Part]:
    """Every config to run for ``experiments`` (E2 brings E1's overconfidence parts), once
    each, in E1..E7 order."""
    seen: dict[str, Part] = {}
    for exp in experiments:
        source = EXPERIMENTS[exp].source
        for part in parts(source or exp, scale):
            if source and part.load().goal.kind != "overconfidence":
                continue
            seen.setdefault(part.config_name, part)
    return sorted(seen.values(), key=lambda p: (list(EXPERIMENTS).index(p.experiment),
                                                p.name))


# -- cost estimates (docs/reproduce.md, README) -------------------------------------------

#: Seconds per plain victim training, by scale (estimates, see docs/reproduce.md): cpu-full
#: MLP, 40 epochs on 27,000 images, 2 cores (docs/results.md: about 25 s, 30 s with the
#: evaluation); paper: ResNet-18 CIFAR form, 40 epochs on 25,000 CIFAR images, one current
#: datacenter GPU with AMP (an estimate: no GPU was measured). Tiny-ImageNet has 4x the
#: pixels per image and twice the training images, so :data:`DATASET_COST` scales it by 8.
SECONDS_PER_TRAINING = {"cpu": 30.0, "paper": 240.0, "test": 0.5}
DATASET_COST = {"tiny-imagenet": 8.0}
#: Training time of a victim under a defense, in plain trainings (measured ratios, digits
#: MLP, configs/cpu/table1.yaml's header).
DEFENSE_COST = {"none": 1.0, "maxup": 3.2, "adversarial_poisoning": 20.5, "epic": 2.4,
                "deep_knn": 1.0, "spectral_signatures": 1.0, "activation_clustering": 1.0,
                "rps": 2.4}
#: Crafting seconds of one poison set at 2 % (cpu: docs/results.md, cpu-full; paper: the
#: upper ends of the paper's Table 2 on CIFAR-10). Random noise costs nothing.
CRAFT_SECONDS = {
    "cpu": {"first-order": 10.0, "second-order": 10.0, "metapoison": 50.0},
    "paper": {"first-order": 19.3 * 60, "second-order": 369.0 * 60, "metapoison": 495.0 * 60},
    "test": {"first-order": 0.2, "second-order": 0.2, "metapoison": 0.5},
}


@dataclass
class Estimate:
    """Trainings and crafting of a set of configs, counted once across them when their
    settings agree (the artifact store shares surrogates, benign victims and poisoned
    victims between runs, SPEC 11)."""

    surrogates: int = 0
    benign: int = 0
    poisoned: int = 0
    poison_sets: int = 0
    training_units: float = 0.0  # plain trainings, defenses and datasets weighted
    craft_seconds: float = 0.0
    seen: set[tuple[Any, ...]] = field(default_factory=set, repr=False)

    @property
    def trainings(self) -> int:
        return self.surrogates + self.benign + self.poisoned

    def seconds(self, scale: str) -> float:
        return self.training_units * SECONDS_PER_TRAINING[scale] + self.craft_seconds


def _method(attack: dict[str, Any]) -> str | None:
    if attack["name"] == "ours":
        return "first-order" if attack.get("order", 1) == 1 else "second-order"
    if attack["name"] in ("metapoison", "misclassification"):
        return "metapoison" if attack["name"] == "metapoison" else "first-order"
    return None


def estimate(configs: list[ExperimentConfig], scale: str,
             into: Estimate | None = None) -> Estimate:
    """Count the trainings of ``configs`` (see :class:`Estimate`); pass ``into`` to add to
    an earlier count so shared work counts once."""
    from cpoison.engine.grid import expand_grid

    est = into or Estimate()
    for config in configs:
        for point in expand_grid(config):
            c = point.config
            data = (c.dataset, c.preset, c.seed, c.setting)
            weight = DATASET_COST.get(c.dataset, 1.0)
            defense = c.defense.model_dump(mode="json")
            dcost = DEFENSE_COST.get(c.defense.name, 1.0) * weight
            craft = c.model_dump(mode="json", include={
                "goal", "targets", "budget", "eps", "alpha", "poison_class",
                "poison_selection"})
            for r in range(c.n_repeats):
                if ("s", data, r) not in est.seen:
                    est.seen.add(("s", data, r))
                    est.surrogates += 1
                    est.training_units += weight
                for attack_cfg in c.attacks:
                    attack = attack_cfg.model_dump(mode="json", exclude={"label"})
                    pkey = ("p", data, r, repr(craft), repr(attack))
                    method = _method(attack)
                    if pkey not in est.seen:
                        est.seen.add(pkey)
                        est.poison_sets += 1
                        if method:
                            est.craft_seconds += (CRAFT_SECONDS[scale][method] * weight
                                                  * min(1.0, c.budget / 0.02) ** 0.5)
                    for j in range(c.n_victims):
                        bkey = ("b", data, r, j, repr(defense))
                        if bkey not in est.seen:
                            est.seen.add(bkey)
                            est.benign += 1
                            est.training_units += dcost
                        vkey = ("v", pkey, j, repr(defense))
                        if vkey not in est.seen:
                            est.seen.add(vkey)
                            est.poisoned += 1
                            est.training_units += dcost
    return est


def estimate_experiments(scale: str, experiments: list[str] | None = None
                         ) -> dict[str, Estimate]:
    """Per experiment (in order), what it adds to the ones before it; ``"all"``: the
    total."""
    out: dict[str, Estimate] = {}
    total = Estimate()
    for exp in select(experiments):
        before_units, before_craft = total.training_units, total.craft_seconds
        counts = (total.surrogates, total.benign, total.poisoned, total.poison_sets)
        configs = [p.load() for p in runs_needed([exp], scale)
                   if EXPERIMENTS[exp].source is None]
        estimate(configs, scale, into=total)
        out[exp] = Estimate(
            total.surrogates - counts[0], total.benign - counts[1],
            total.poisoned - counts[2], total.poison_sets - counts[3],
            total.training_units - before_units, total.craft_seconds - before_craft)
    out["all"] = total
    return out
