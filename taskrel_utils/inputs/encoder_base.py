"""What every encoder loader shares: the :class:`Encoder` record, the checks of a loader's
options and seed, seeded construction, and the offline rule (a download that cannot happen fails
within seconds, saying how to provide the file).

The registry (:mod:`taskrel_utils.inputs.encoders`) and the torchvision loader
(:mod:`taskrel_utils.inputs.torchvision_encoders`) both build on it.
"""
from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..core.errors import OfflineError, TaskrelError, UnknownNameError
from .preprocessing import Preprocess

#: values of HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE that mean "offline"
TRUE_VALUES = ("1", "true", "yes", "on")


@dataclass(eq=False)
class Encoder:
    """A frozen feature extractor: ``encode(preprocess(images)) -> (B, feature_dim)``."""

    name: str
    model: nn.Module
    feature_dim: int
    preprocess: Preprocess
    weights_id: str
    head: nn.Module | None = None
    info: dict = field(default_factory=dict)
    device: str = "cpu"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features of a preprocessed batch ``(B, C, size, size)`` (no gradient)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            raise TaskrelError(f"{self.name}: encode expects a preprocessed (B, C, H, W) tensor "
                               f"(use encoder.preprocess(images) first), got "
                               f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        with torch.no_grad():
            return self.model(x.to(self.device, torch.float32))

    def __repr__(self):
        return (f"Encoder({self.name!r}, feature_dim={self.feature_dim}, "
                f"preprocess={self.preprocess.description!r}, weights_id={self.weights_id[:12]!r})")


def no_options(name, options, valid=()):
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UnknownNameError(f"option of encoder {name!r}", unknown[0], valid or ["(none)"])


# ---------------------------------------------------------------------------- in-kit CNNs


def seeded(seed, fn):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn()


def check_seed(name, seed):
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TaskrelError(f"{name}: seed must be an int, got {seed!r}")


def offline_reason(host: str = "huggingface.co", port: int = 443, timeout: float = 3.0) -> str | None:
    """Why downloads are impossible (``HF_HUB_OFFLINE`` set, or no connection within ``timeout``), else None."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in TRUE_VALUES:
            return f"{var}={os.environ[var]} is set"
    result = {}

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result["ok"] = True
        except OSError as e:
            result["error"] = e

    t = threading.Thread(target=probe, daemon=True)  # bounds DNS resolution too
    t.start()
    t.join(timeout + 0.5)
    if result.get("ok"):
        return None
    return f"no network connection to {host}:{port} ({result.get('error', 'timed out')})"


def offline_error(what: str, artefact: str, reason: str, path_hint: str, warm_cmd: str) -> OfflineError:
    return OfflineError(
        f"{what} needs {artefact}, which is not in the local cache and cannot be downloaded: {reason}. "
        f"Provide it (a) as a local checkpoint file: {path_hint}; or (b) by pre-populating the Hugging Face "
        f"cache on a machine with internet (`{warm_cmd}`) and copying the cache folder (HF_HOME, default "
        f"~/.cache/huggingface) to this machine. Without internet, the mini profile needs no download.")
