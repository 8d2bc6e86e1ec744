"""Converting the released X2Face weights (``x2face_model_forpython3.pth``) to our format.

The release is a state_dict of the original ``UnwrappedFaceWeightedAverage`` module: a
pix2pix U-Net ``pix2pixUnwrapped`` (embedding) and a skip-less one ``pix2pixSampler``
(driving), each a chain of nested blocks. The block at depth d (0 outermost) holds its
encoder convolution in ``down`` and its decoder convolution in ``up``, with the layer
indices our ``Encoder`` and ``Decoder`` levels use, so the mapping is by depth:

    <net>.netG.model.<'submodule.' x d>down.<k>.<p>  ->  <encoder>.levels.<d>.<k>.<p>
    <net>.netG.model.<'submodule.' x d>up.<k>.<p>    ->  <decoder>.levels.<L-1-d>.<k>.<p>
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..errors import X2FaceError
from .networks import ModelConfig, X2Face

NETWORKS = {"pix2pixUnwrapped.netG.model.": "embedding", "pix2pixSampler.netG.model.": "driving"}
_KEY = re.compile(r"^((?:submodule\.)*)(down|up)\.(\d+)\.(\w+)$")


def official_to_ours(key: str, levels: int) -> str | None:
    """Our name for a released key (None for keys that are not network weights)."""
    for prefix, network in NETWORKS.items():
        if key.startswith(prefix):
            match = _KEY.match(key[len(prefix):])
            if not match:
                return None
            depth = len(match.group(1)) // len("submodule.")
            half, index, parameter = match.group(2), match.group(3), match.group(4)
            if half == "down":
                return f"{network}_encoder.levels.{depth}.{index}.{parameter}"
            return f"{network}_decoder.levels.{levels - 1 - depth}.{index}.{parameter}"
    return None


def import_official(path: str | Path) -> X2Face:
    """Build our model from the released checkpoint, or say precisely why ``path`` is not one."""
    path = Path(path)
    if not path.is_file():
        raise X2FaceError(f"no such file: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if "Unsupported global" in str(exc):
            raise X2FaceError(f"{path} holds pickled Python objects, not a state_dict of tensors: load it in the original "
                              "code and save model.state_dict()") from None
        raise X2FaceError(f"{path} is not a PyTorch file (or is damaged)") from None
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise X2FaceError(f"{path} is a PyTorch file but holds no state_dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    first_conv = state.get("pix2pixUnwrapped.netG.model.down.0.weight")
    if first_conv is None or "pix2pixSampler.netG.model.down.0.weight" not in state:
        raise X2FaceError(f"{path} is not an X2Face release checkpoint: it has no pix2pixUnwrapped/pix2pixSampler "
                          f"U-Net weights (first keys: {', '.join(list(state)[:3])})")
    depth = max(k.count("submodule.") for k in state if k.startswith("pix2pixUnwrapped.")) + 1
    model = X2Face(ModelConfig(resolution=2**depth, width=first_conv.shape[0], original_release=True))
    ours = {}
    for key, tensor in state.items():
        name = official_to_ours(key, model.config.levels)
        if name is not None:
            ours[name] = tensor
    expected = model.state_dict()
    missing = [k for k in expected if k not in ours and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in ours if k not in expected]
    if missing or unexpected:
        example = (missing or unexpected)[0]
        raise X2FaceError(f"{path} does not have the X2Face release's layers: {len(missing)} missing, "
                          f"{len(unexpected)} unexpected (e.g. {example})")
    for key, tensor in ours.items():
        if tensor.shape != expected[key].shape:
            raise X2FaceError(f"{path}: {key} has shape {tuple(tensor.shape)}, the X2Face release has {tuple(expected[key].shape)}")
    # Checkpoints from PyTorch < 0.4.1 have no BatchNorm step counters.
    ours.update({k: expected[k] for k in expected if k not in ours})
    model.load_state_dict(ours)
    return model.eval()
