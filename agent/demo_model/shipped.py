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


def checkpoint_dir(path: Path) -> Path:
    """``path``, or the shipped checkpoint when ``path`` is the word ``demo`` (and no folder of
    that name exists): how ``--engine local:demo`` and ``agent serve demo`` name it."""
    return demo_checkpoint() if str(path) == "demo" and not path.is_dir() else path
