"""The Harmony format: offline vocabulary, rendering, strict streaming parsing."""

from __future__ import annotations

from agent.harmony.codec import HarmonyCodec as HarmonyCodec
from agent.harmony.codec import SystemSettings as SystemSettings
from agent.harmony.parser import CompletionParser as CompletionParser
from agent.harmony.parser import ParsedMessage as ParsedMessage
from agent.harmony.parser import TextDelta as TextDelta
from agent.harmony.transcript import Transcript as Transcript
from agent.harmony.vocab import load_encoding as load_encoding
