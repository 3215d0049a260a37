"""The paper, reproduced (SPEC 9, issue 12): the configs of experiments E1-E7 at paper, CPU
and test scale (:mod:`~cpoison.reproduce.experiments`), ``cpoison reproduce``
(:func:`~cpoison.reproduce.run.reproduce`), and one HTML + Markdown report with the paper's
figures, its published values (:mod:`~cpoison.reproduce.paper_values`) and a verdict on
each claim of its Sec. 5 (:mod:`~cpoison.reproduce.claims`)."""

from cpoison.reproduce.experiments import EXPERIMENTS, SCALES
from cpoison.reproduce.run import reproduce

__all__ = ["EXPERIMENTS", "SCALES", "reproduce"]
