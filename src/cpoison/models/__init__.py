"""Image classifiers used as surrogate and victim models.

Every model maps ``[B, C, H, W]`` images in ``[0, 1]`` to logits ``[B, num_classes]``,
exposes ``features(x) -> [B, feature_dim]`` and a final ``head: nn.Linear`` with
``model(x) == model.head(model.features(x))``, and takes an optional
``normalize=(mean, std)``. Build them by name with :func:`build_model`.
"""

from cpoison.models.base import ImageClassifier
from cpoison.models.convnet import ConvNet
from cpoison.models.mlp import MLP
from cpoison.models.mobilenet import MobileNetV2
from cpoison.models.registry import MODELS, available_models, build_model, model_kwargs
from cpoison.models.resnet import ResNet18
from cpoison.models.user import HookedClassifier, load_user_model
from cpoison.models.vgg import VGG16

__all__ = [
    "MLP",
    "MODELS",
    "VGG16",
    "ConvNet",
    "HookedClassifier",
    "ImageClassifier",
    "MobileNetV2",
    "ResNet18",
    "available_models",
    "build_model",
    "load_user_model",
    "model_kwargs",
]
