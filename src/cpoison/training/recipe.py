"""Training recipe (SPEC 6): the paper's victim recipe is SGD, lr 0.01, batch 128,
momentum 0.9, weight decay 5e-4, with epochs and step milestones from the preset."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Recipe(BaseModel):
    """How a model is trained; part of every model key (``cpoison.store.keys``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    nesterov: bool = False
    milestones: tuple[float, ...] = Field(
        (0.5, 0.75), description="fractions of training at which lr is multiplied by gamma"
    )
    gamma: float = Field(0.1, gt=0, le=1)
    crop_padding: int = Field(2, ge=0, description="random-crop zero padding in pixels (0: off)")
    flip: bool = True
    channels_last: bool = Field(
        True, description="NHWC memory format for conv nets (faster on CPU; same numbers)")
    precision: Literal["fp32", "bf16", "auto"] = Field(
        "fp32", description="bf16: forward and backward under torch.autocast in bfloat16 "
        "(weights, optimizer and loss stay fp32), faster only where the hardware has it "
        "(CPUs with avx512_bf16 / amx_bf16, recent GPUs) and several times slower elsewhere; "
        "auto: bf16 where native, else fp32 (cpoison.training.precision)")

    @model_validator(mode="after")
    def _check_milestones(self) -> Recipe:
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError("milestones are fractions of training, each in (0, 1)")
        return self

    def milestone_epochs(self) -> list[int]:
        """Epoch indices (0-based) at whose start the learning rate decays."""
        return sorted({max(1, round(m * self.epochs)) for m in self.milestones})
