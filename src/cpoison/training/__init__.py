"""Training: recipe, poisoned training-set view, seeded trainer and its hooks."""

from cpoison.training.augment import augment
from cpoison.training.hooks import TrainingHooks
from cpoison.training.recipe import Recipe
from cpoison.training.trainer import (
    TRAINER_VERSION,
    build_seeded_model,
    predict_features,
    predict_logits,
    train_model,
)
from cpoison.training.trainset import TrainSet

__all__ = [
    "TRAINER_VERSION",
    "Recipe",
    "TrainSet",
    "TrainingHooks",
    "augment",
    "build_seeded_model",
    "predict_features",
    "predict_logits",
    "train_model",
]
