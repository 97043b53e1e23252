"""Load the Harmony encoding offline, from the vocabulary shipped inside the package.

openai-harmony downloads ``o200k_base.tiktoken`` on first use unless ``TIKTOKEN_ENCODINGS_BASE``
names a folder holding it. We ship the file and point the variable at it, so the project works
air-gapped; a user who set the variable keeps their own folder.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import openai_harmony as oh

from agent.errors import VocabularyError

VOCAB_FILE = "o200k_base.tiktoken"
VOCAB_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
SHIPPED_DIR = Path(__file__).parent / "data"
_ENV = "TIKTOKEN_ENCODINGS_BASE"


def _verify(folder: Path) -> None:
    path = folder / VOCAB_FILE
    if not path.is_file():
        raise VocabularyError(
            f"the Harmony vocabulary {path} is missing. Reinstall oss-agent "
            f"(pip install --force-reinstall oss-agent), or set {_ENV} to a folder holding "
            f"{VOCAB_FILE} (sha256 {VOCAB_SHA256})."
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != VOCAB_SHA256:
        raise VocabularyError(
            f"the Harmony vocabulary {path} is corrupt (sha256 {digest}, expected "
            f"{VOCAB_SHA256}). Replace it with a good copy of {VOCAB_FILE} or reinstall oss-agent."
        )


@functools.cache
def load_encoding() -> oh.HarmonyEncoding:
    """The gpt-oss Harmony encoding, loaded once per process.

    Raises:
        VocabularyError: the vocabulary file is missing or does not have the expected digest.
    """
    user_dir = os.environ.get(_ENV)
    folder = Path(user_dir) if user_dir else SHIPPED_DIR
    _verify(folder)
    os.environ[_ENV] = str(folder)
    try:
        return oh.load_harmony_encoding(oh.HarmonyEncodingName.HARMONY_GPT_OSS)
    except oh.HarmonyError as exc:  # the Rust layer's message, kept, with what to do
        raise VocabularyError(
            f"could not load the Harmony encoding from {folder}: {exc}"
        ) from exc
