"""Training: recipe, poisoned training-set view, seeded trainer, model cache."""

from cpoison.training.augment import augment
from cpoison.training.cache import ModelCache, cache_key, default_cache_dir, tensor_digest
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
    "ModelCache",
    "Recipe",
    "TrainSet",
    "augment",
    "build_seeded_model",
    "cache_key",
    "default_cache_dir",
    "predict_features",
    "predict_logits",
    "tensor_digest",
    "train_model",
]
