"""The trained demo model ships inside the package (about 23 MB), so it needs no download.

``--engine local:demo`` names it; :func:`demo_checkpoint` is its folder (original layout).
"""

from __future__ import annotations

from pathlib import Path

from agent.errors import UserError

CHECKPOINT_DIR = Path(__file__).with_name("checkpoint")
_FILES = ("config.json", "model.safetensors")


def demo_checkpoint() -> Path:
    """The shipped checkpoint's folder.

    Raises:
        UserError: the package was installed without its data files.
    """
    missing = [name for name in _FILES if not (CHECKPOINT_DIR / name).is_file()]
    if missing:
        raise UserError(f"the demo model is not installed ({', '.join(missing)} missing in "
                        f"{CHECKPOINT_DIR}); reinstall oss-agent with its package data")
    return CHECKPOINT_DIR
