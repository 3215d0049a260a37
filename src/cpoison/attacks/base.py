"""The attack interface: an attack turns an :class:`AttackContext` into a :class:`PoisonSet`.

Gradient-based attacks define only their objective (a direction in parameter space) and
reuse the shared crafting loop of :mod:`cpoison.attacks.alignment`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from pydantic import BaseModel

from cpoison.attacks.context import AttackContext
from cpoison.attacks.poison_set import PoisonSet


class AttackConfigBase(BaseModel):
    """What every attack's config answers for the results (its ``name`` field, a
    ``Literal``, selects the attack in :data:`cpoison.attacks.registry.ATTACKS`)."""

    name: str
    label: str | None

    def default_label(self) -> str:
        """The name of the attack's rows when the config gives no ``label``."""
        return self.name

    def objective_facts(self) -> tuple[str | None, int | None, str | None]:
        """(loss, update order, score inside the loss) recorded with every result row;
        None where the attack has none (the random baselines)."""
        return None, None, None


class Attack(ABC):
    """Base class; ``name`` identifies the attack in results."""

    name: str = "attack"

    @abstractmethod
    def craft(self, ctx: AttackContext) -> PoisonSet:
        """Return poisons for ``ctx.base_ids`` with ||delta||_inf <= ctx.eps."""
