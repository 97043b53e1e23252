"""``agent serve CHECKPOINT``: the bundled gpt-oss engine behind OpenAI-compatible HTTP."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import anyio
import structlog

from agent.errors import UserError

log = structlog.get_logger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve", help="serve a gpt-oss checkpoint over OpenAI-compatible HTTP",
        description="Serve a gpt-oss checkpoint with the bundled engine: /v1/completions "
        "(token ids in and out, as vLLM), /v1/chat/completions, /v1/responses, /health.",
    )
    p.add_argument("checkpoint", type=Path,
                   help="checkpoint directory (HF or original layout), or demo (the shipped model)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default: cpu)")
    p.add_argument("--dtype", choices=["bfloat16", "float32", "float16"],
                   help="default: bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--model-name", help="name in /v1/models (default: the directory's name)")
    p.add_argument("--max-batch", type=int, default=8, help="sequences decoded together")
    p.add_argument("--max-context", type=int, default=4096, help="prompt + completion tokens")
    p.add_argument("--max-tokens", type=int, default=2048,
                   help="completion budget when a request names none")
    p.add_argument("--grace", type=float, default=30, help="seconds in-flight requests get "
                   "to finish on shutdown")
    p.add_argument("--stream-interval", type=int, default=1, metavar="N",
                   help="stream completion tokens N at a time after the first (default: 1)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from agent.demo_model.shipped import checkpoint_dir

    checkpoint = checkpoint_dir(args.checkpoint)
    if checkpoint != args.checkpoint:  # the shipped demo model
        args.model_name = args.model_name or "demo"
    args.checkpoint = checkpoint
    if args.stream_interval < 1:
        raise UserError(f"--stream-interval must be >= 1, not {args.stream_interval}")
    if not args.checkpoint.is_dir():
        raise UserError(f"{args.checkpoint}: not a checkpoint directory")
    try:
        import torch

        from agent.engine.gptoss import GptOssEngine
    except ModuleNotFoundError as exc:
        raise UserError(f"`agent serve` needs the engine extra ({exc.name} is missing): "
                        "pip install 'oss-agent[engine]'") from exc
    from agent.serve import build_app, serve

    dtype = getattr(torch, args.dtype) if args.dtype else None
    engine = GptOssEngine.from_checkpoint(args.checkpoint, device=args.device, dtype=dtype,
                                          max_batch=args.max_batch, max_context=args.max_context)
    name = args.model_name or args.checkpoint.resolve().name
    app = build_app(engine, model_name=name, max_tokens=args.max_tokens, close_engine=True,
                    stream_interval=args.stream_interval)
    log.info("serve.listening", host=args.host, port=args.port, model=name)
    anyio.run(lambda: serve(app, host=args.host, port=args.port, grace_s=args.grace))
    return 0
