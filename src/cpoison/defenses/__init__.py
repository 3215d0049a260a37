"""Poisoning defenses (SPEC 7) behind one seam (:mod:`cpoison.defenses.base`).

Training-time: MaxUp, adversarial poisoning, EPIC. Filters on penultimate features: deep
k-NN, spectral signatures, activation clustering. CP-specific: reliable prediction sets
(RPS) and the head refit on clean calibration data (beyond the paper). ``none`` changes
nothing.
"""

from cpoison.defenses.base import (
    Adapted,
    Defense,
    DefenseConfigBase,
    DefenseOutcome,
    FeatureFilter,
    Prepared,
    TrainFn,
    TrainingHooks,
    content_hash_partition,
    removal_shares,
    subset,
    train_features,
    train_logits,
)
from cpoison.defenses.registry import (
    DEFENSES,
    AnyDefenseConfig,
    DefenseConfig,
    available_defenses,
    build_defense,
    defense_label,
    parse_defense,
)
from cpoison.defenses.rps import ReliableConformal, RPSCertificate, majority_threshold

__all__ = [
    "DEFENSES",
    "Adapted",
    "AnyDefenseConfig",
    "Defense",
    "DefenseConfig",
    "DefenseConfigBase",
    "DefenseOutcome",
    "FeatureFilter",
    "Prepared",
    "RPSCertificate",
    "ReliableConformal",
    "TrainFn",
    "TrainingHooks",
    "available_defenses",
    "build_defense",
    "content_hash_partition",
    "defense_label",
    "majority_threshold",
    "parse_defense",
    "removal_shares",
    "subset",
    "train_features",
    "train_logits",
]
