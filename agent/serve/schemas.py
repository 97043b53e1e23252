"""Request bodies of the served endpoints, validated at the edge (pydantic).

Only the fields the server acts on are declared; unknown fields are ignored, as OpenAI-compatible
servers do, so clients that send more (``user``, ``metadata``, ``n=1``) keep working.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Body):
    include_usage: bool = False


class Sampling(_Body):
    model: str | None = None
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None


class CompletionBody(Sampling):
    """``/v1/completions`` with token ids: ``prompt`` is a list of ids (or a one-element batch)."""

    prompt: list[int] | list[list[int]]
    max_tokens: int = Field(16, ge=1)
    stop_token_ids: list[int] = []
    return_token_ids: bool = False
    n: int = Field(1, ge=1, le=1)
    conversation_id: str | None = None

    def prompt_ids(self) -> list[int]:
        batch = [self.prompt] if not self.prompt or isinstance(self.prompt[0], int) \
            else self.prompt
        if len(batch) != 1:
            raise ValueError("batched prompts are not supported: send one prompt per request")
        return [int(t) for t in batch[0]]  # type: ignore[arg-type]


class FunctionDef(_Body):
    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None


class ChatTool(_Body):
    type: Literal["function"] = "function"
    function: FunctionDef


class ToolCallFunction(_Body):
    name: str
    arguments: str = ""


class ChatToolCall(_Body):
    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunction


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ChatToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if isinstance(p, dict))


class ChatBody(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ChatTool] | None = None
    tool_choice: Any = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    reasoning_effort: Literal["low", "medium", "high"] | None = None


class ResponsesTool(_Body):
    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Reasoning(_Body):
    effort: Literal["low", "medium", "high"] | None = None


class ResponsesBody(Sampling):
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[ResponsesTool] = []
    tool_choice: Any = None
    max_output_tokens: int | None = Field(None, ge=1)
    reasoning: Reasoning | None = None
    previous_response_id: str | None = None
