"""Transfer setting (SPEC 2): frozen extractor + convex head, full CP (SPEC 3.5), the attack
on it, and Theorem 4.1 measured.

Engine entry points: :func:`pretrain_extractor`, :func:`extract_features`, :func:`fit_head`,
:class:`FullConformal` / :func:`full_cp_sets`, :func:`head_target_direction`,
:func:`craft_transfer_poisons`, :func:`evaluate_full_cp_victims`, :func:`theorem41_table`.
"""

from cpoison.transfer.attack import (
    VictimReport,
    craft_transfer_poisons,
    evaluate_full_cp_victims,
    head_target_direction,
    poison_features,
)
from cpoison.transfer.full_cp import (
    DEFAULT_SUBSET_SIZE,
    FullConformal,
    FullCPResult,
    SubsetTooLargeError,
    full_cp_sets,
    select_subset,
)
from cpoison.transfer.head import (
    FittedHead,
    HeadConvergenceError,
    fit_head,
    fit_mlp_head,
    head_hessian,
    linear_order,
)
from cpoison.transfer.model import (
    NoFeatureLayerError,
    TransferModel,
    check_extractor,
    extract_features,
)
from cpoison.transfer.pretrain import pretrain_extractor
from cpoison.transfer.theorem import GapRow, theorem41_gap, theorem41_table

__all__ = [
    "DEFAULT_SUBSET_SIZE",
    "FittedHead",
    "FullCPResult",
    "FullConformal",
    "GapRow",
    "HeadConvergenceError",
    "NoFeatureLayerError",
    "SubsetTooLargeError",
    "TransferModel",
    "VictimReport",
    "check_extractor",
    "craft_transfer_poisons",
    "evaluate_full_cp_victims",
    "extract_features",
    "fit_head",
    "fit_mlp_head",
    "full_cp_sets",
    "head_hessian",
    "head_target_direction",
    "linear_order",
    "poison_features",
    "pretrain_extractor",
    "select_subset",
    "theorem41_gap",
    "theorem41_table",
]
