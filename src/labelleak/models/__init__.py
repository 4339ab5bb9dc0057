"""Architectures, training and the on-disk model store."""

from labelleak.models.architectures import ARCHITECTURES, CNN, CNN_CONFIGS, MLP, ModelSpec, build_model
from labelleak.models.settings import TrainReport, TrainSettings
from labelleak.models.store import ModelStore, load_model, model_key, save_model
from labelleak.models.training import accuracy, init_model, predict_logits, train_model

__all__ = [
    "ARCHITECTURES",
    "CNN",
    "CNN_CONFIGS",
    "MLP",
    "ModelSpec",
    "ModelStore",
    "TrainReport",
    "TrainSettings",
    "accuracy",
    "build_model",
    "init_model",
    "load_model",
    "model_key",
    "predict_logits",
    "save_model",
    "train_model",
]
