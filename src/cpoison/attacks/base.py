"""The attack interface: an attack turns an :class:`AttackContext` into a :class:`PoisonSet`.

Gradient-based attacks define only their objective (a direction in parameter space) and
reuse the shared crafting loop of :mod:`cpoison.attacks.alignment`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from cpoison.attacks.context import AttackContext
from cpoison.attacks.poison_set import PoisonSet


class Attack(ABC):
    """Base class; ``name`` identifies the attack in results."""

    name: str = "attack"

    @abstractmethod
    def craft(self, ctx: AttackContext) -> PoisonSet:
        """Return poisons for ``ctx.base_ids`` with ||delta||_inf <= ctx.eps."""
