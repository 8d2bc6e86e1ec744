"""The trainable X2Face model. Knows tensors and face crops, never video files."""

from .checkpoint import CheckpointError, ModelInfo, default_model_path, load_checkpoint, load_model, load_model_with_info, save_checkpoint
from .networks import ModelConfig, X2Face, count_parameters

__all__ = [
    "CheckpointError", "ModelConfig", "ModelInfo", "X2Face", "count_parameters", "default_model_path", "load_checkpoint",
    "load_model", "load_model_with_info", "save_checkpoint",
]
