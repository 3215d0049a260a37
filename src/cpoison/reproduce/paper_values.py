"""The paper's published numbers, in one place, each with where it comes from (SPEC 9).

Li et al., "Data Poisoning Attacks against Conformal Prediction", ICML 2024, Sec. 5. All
values are CIFAR-10 with ResNet-18 (paper scale); at CPU scale (Fashion-MNIST) the report
prints them beside ours for orientation, never as a target to match. Nothing here is
computed: a value the paper does not print is absent, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE = ("Li et al., Data Poisoning Attacks against Conformal Prediction, ICML 2024, "
          "Sec. 5")


@dataclass(frozen=True)
class Published:
    """One published figure: its value (or range), the setting it holds for, and where the
    paper prints it."""

    value: float | tuple[float, float]
    se: float | None
    setting: str
    where: str

    def text(self) -> str:
        """``0.46 ± 0.02`` or ``0.36-0.46``."""
        if isinstance(self.value, tuple):
            low, high = self.value
            return f"{low:g}-{high:g}"
        return f"{self.value:.2f}" + (f" ± {self.se:.2f}" if self.se is not None else "")


# Fig. 1a / Sec. 5.1: CIFAR-10 overconfidence at 2 % (HPS and RAPS).
FIG1_CIFAR10_2PCT: dict[str, dict[str, Published]] = {
    "hps": {
        "benign_set_size": Published(2.0, None, "CIFAR-10, 2 %", "Sec. 5.1 (Fig. 1a)"),
        "reduction_ratio": Published(0.48, None, "CIFAR-10, 2 %", "Sec. 5.1 (Fig. 1a)"),
    },
    "raps": {
        "benign_set_size": Published(2.84, None, "CIFAR-10, 2 %", "Sec. 5.1 (Fig. 1a)"),
        "reduction_ratio": Published(0.54, None, "CIFAR-10, 2 %", "Sec. 5.1 (Fig. 1a)"),
    },
}
#: Sec. 5.1: "the baselines achieve reduction ratios below 0.32" (RandUn, RandGa; 2 %).
BASELINES_BELOW = Published(0.32, None, "CIFAR-10, 2 %, RandUn and RandGa (upper bound)",
                            "Sec. 5.1")

# Table 1: reduction ratio at 2 % on CIFAR-10 under each defense (mean ± s.e.).
TABLE1: dict[str, dict[str, Published]] = {
    defense: {
        score: Published(mean, se, "CIFAR-10, 2 %", "Table 1")
        for score, (mean, se) in zip(("hps", "aps", "raps", "rscp"), values, strict=True)
    }
    for defense, values in {
        "none": ((0.46, 0.02), (0.47, 0.04), (0.54, 0.04), (0.49, 0.05)),
        "maxup": ((0.34, 0.05), (0.32, 0.07), (0.49, 0.06), (0.26, 0.07)),
        "adversarial_poisoning": ((0.39, 0.04), (0.28, 0.09), (0.41, 0.06), (0.24, 0.07)),
        "epic": ((0.38, 0.06), (0.33, 0.09), (0.42, 0.07), (0.38, 0.10)),
    }.items()
}

# Table 2 (HPS, CIFAR-10, budgets 0.5-2 %), read from a third-party extraction of the PDF
# (SPEC 9): ranges over the budgets. MetaPoison's reduction is only given as "lower".
TABLE2: dict[str, dict[str, Published | str]] = {
    "first-order": {
        "reduction_ratio": Published((0.36, 0.46), None, "CIFAR-10, 0.5-2 %", "Table 2"),
        "minutes": Published((12.8, 19.3), None, "CIFAR-10, 0.5-2 %", "Table 2"),
    },
    "second-order": {
        "reduction_ratio": Published((0.38, 0.48), None, "CIFAR-10, 0.5-2 %", "Table 2"),
        "minutes": Published((96.0, 369.0), None, "CIFAR-10, 0.5-2 %", "Table 2"),
    },
    "metapoison": {
        "reduction_ratio": "lower than ours",
        "minutes": Published((233.0, 495.0), None, "CIFAR-10, 0.5-2 %", "Table 2"),
    },
}

#: Fig. 3 / Sec. 5.3: l3 beats l2 by these margins of reduction ratio (black box, HPS).
L3_OVER_L2: dict[float, Published] = {
    0.005: Published(0.01, None, "CIFAR-10, 0.5 %", "Sec. 5.3 (Fig. 3)"),
    0.01: Published(0.02, None, "CIFAR-10, 1 %", "Sec. 5.3 (Fig. 3)"),
}


def table2_method(loss: str | None, order: int | None) -> str | None:
    """The Table 2 row of a result row's objective: ``first-order``, ``second-order``,
    ``metapoison`` or None."""
    if loss == "metapoison":
        return "metapoison"
    if loss in ("l2", "l3"):
        return "first-order" if order == 1 else "second-order"
    return None
