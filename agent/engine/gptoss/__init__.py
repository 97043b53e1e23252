"""The bundled gpt-oss engine: pure PyTorch (CPU and CUDA), MXFP4 experts, continuous batching.

Needs the ``engine`` extra (torch, safetensors). Import it explicitly::

    from agent.engine.gptoss import GptOssEngine
"""

from __future__ import annotations

from .checkpoint import Checkpoint as Checkpoint
from .checkpoint import CheckpointError as CheckpointError
from .checkpoint import open_checkpoint as open_checkpoint
from .config import ConfigError as ConfigError
from .config import ModelConfig as ModelConfig
from .core import CoreOptions as CoreOptions
from .core import EngineCore as EngineCore
from .engine import GptOssEngine as GptOssEngine
from .model import GptOssModel as GptOssModel
from .random_checkpoint import write_random_checkpoint as write_random_checkpoint
from .weights import ModelWeights as ModelWeights
from .weights import load_weights as load_weights
