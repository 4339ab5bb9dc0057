"""Architectures, training and the on-disk model store."""

from labelleak.models.architectures import ARCHITECTURES, CNN, CNN_CONFIGS, MLP, ModelSpec, build_model
from labelleak.models.settings import TrainReport, TrainSettings
from labelleak.models.store import ModelStore, TrainedModel, load_model, model_key, save_model, train_or_load
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
    "TrainedModel",
    "accuracy",
    "build_model",
    "init_model",
    "load_model",
    "model_key",
    "predict_logits",
    "save_model",
    "train_model",
    "train_or_load",
]
