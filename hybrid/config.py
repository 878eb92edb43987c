"""Settings for the whole product, composed from the leaves' own configs.

Precedence, highest first: explicit arguments (CLI flags), ``HYBRID_*`` environment variables,
``hybrid.toml`` (``$HYBRID_CONFIG``, else ``./hybrid.toml``), defaults. An unknown key in
``hybrid.toml`` is an error, not silently ignored. Nested leaf settings use ``__`` in variables:
``HYBRID_INGEST__CHUNK_SIZE=600``, or a ``[ingest]`` table in the file.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

import ingest
from hybrid.errors import ConfigError
from hybrid.limits import K_MAX, K_MIN, MAX_NEW_TOKENS
from ingest import IngestConfig, IngestConfigError, SearchConfig
from tune import TuneConfig, TuneConfigError

DEFAULT_HOME = Path("~/.hybrid")
DEFAULT_ADAPTER_NAME = "house"


def _toml_path() -> Path:
    return Path(os.environ.get("HYBRID_CONFIG", "hybrid.toml"))


class EngineSettings(BaseModel):
    """A serving engine that writes the answers (``hybrid.engine``); no URL: this process does."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible engine (llama.cpp's llama-server, vLLM, TGI, Ollama), such as "
        "http://127.0.0.1:8080/v1; unset: generate in this process.",
    )
    key: SecretStr | None = Field(None, description="Bearer key the engine expects, if any.")
    model: str | None = Field(None, description="The engine's name for the base model; default: the base_model setting.")
    models: dict[str, str] = Field(
        default_factory=dict,
        description="The engine's name for an adapter: NAME@vN or NAME -> the name the engine serves it under; "
        "default: NAME@vN itself.",
    )
    timeout: float = Field(60.0, gt=0, le=3600, description="Seconds without a byte from the engine before the reply fails (504).")
    retries: int = Field(2, ge=0, le=10, description="Retries of a connection to the engine that fails before the reply starts.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra fields sent with every request: {\"repeat_penalty\": 1.1} for llama.cpp, "
        "{\"repetition_penalty\": 1.1} for vLLM (the in-process generator uses 1.1).",
    )

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value or None  # empty (HYBRID_ENGINE__URL=): generate in this process


class Settings(BaseSettings):
    """Everything a command or the server needs; see docs/reference/config.md."""

    model_config = SettingsConfigDict(
        arbitrary_types_allowed=True,
        env_prefix="HYBRID_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(DEFAULT_HOME, description="Where indexes, adapters and model caches live.")
    index: Path | None = Field(None, description="Index directory; default: HOME/index. A PostgreSQL URL here sets `store`.")
    store: str | None = Field(
        None,
        description="A PostgreSQL URL (postgresql://...): keep the index in PostgreSQL with pgvector, shared by every "
        "server that names it, instead of in the index directory. `--index URL` sets it too.",
    )
    embedder: str = Field("all-MiniLM-L6-v2", description="Embedding model: the embedded default, a HF id or a directory.")
    base_model: str = Field("SmolLM2-135M-Instruct", description="Generator base model: the embedded default, a HF id or a directory.")
    adapter: str = Field(
        "auto",
        description="Adapter for answers: NAME, NAME@vN, a directory, 'none', or 'auto' "
        "(the active version of 'house' when one exists, else the base model alone).",
    )
    k: int = Field(5, ge=K_MIN, le=K_MAX, description="Passages retrieved per question.")
    min_score: float | None = Field(
        None,
        description="Refuse when the best passage scores below this cosine similarity; "
        "default: the threshold calibrated for the embedder (see docs/concepts/refusal.md).",
    )
    max_new_tokens: int = Field(200, ge=1, le=MAX_NEW_TOKENS, description="Longest generated answer, in tokens.")
    evidence: int = Field(
        4,
        ge=0,
        le=20,
        description="Evidence sentences shown to the model (hybrid.evidence): the sentences of the retrieved passages "
        "that best answer the question; 0 shows the whole passages instead.",
    )
    evidence_tokens: int = Field(
        48,
        ge=1,
        le=MAX_NEW_TOKENS,
        description="Longest answer generated from evidence sentences, in tokens, not counting the adapter's house frame "
        "(and at most max_new_tokens): the prompt asks for one or two short sentences.",
    )
    fast_decode: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Speculative decoding of greedy answers (tune.fastlm: an int8 draft compiled ahead of time, checked "
        "by the float32 model; the same tokens, 2.4-2.7x faster than the plain loop): 'auto' = in `hybrid serve`, built in "
        "the background after start-up; 'on' = everywhere, built before the first answer (about two minutes the first "
        "time); 'off' = never.",
    )
    allow_download: bool = Field(False, description="Let model loading reach a model hub.")
    api_key: SecretStr | None = Field(None, description="Bearer key for /v1 routes.")
    admin_key: SecretStr | None = Field(None, description="Bearer key for admin routes.")
    insecure: bool = Field(
        False,
        description="Serve without HYBRID_API_KEY on an address other than loopback: anyone who can reach it may "
        "query, and with no HYBRID_ADMIN_KEY either, upload documents and activate adapters (`hybrid serve --insecure`).",
    )
    max_concurrent: int = Field(2, ge=1, le=64, description="Query, chat and search requests served at once; more wait in the queue.")
    max_queue: int = Field(16, ge=0, le=10_000, description="Requests that may wait for a slot; beyond that, 503 with Retry-After.")
    queue_timeout: float = Field(60.0, gt=0, le=3600, description="Seconds a request may wait for a slot before a 503.")
    stall_timeout: float = Field(
        120.0,
        gt=0,
        le=86_400,
        description="Seconds a reply may go without a new token (its prefill included) before GET /healthz says "
        "'degraded' with a 503, so that a supervisor restarts a stuck server.",
    )
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="Chunking and embedding: ingest.IngestConfig.")
    tune: TuneConfig = Field(default_factory=TuneConfig, description="Default LoRA hyperparameters: tune.TuneConfig.")
    search: SearchConfig = Field(default_factory=SearchConfig, description="Retrieval: ingest.SearchConfig.")
    engine: EngineSettings = Field(default_factory=EngineSettings, description="A serving engine for generation: hybrid.engine.")

    @field_validator("ingest", "tune", "search", mode="before")
    @classmethod
    def _leaf_config(cls, value: Any, info: ValidationInfo) -> Any:
        """Each leaf validates its own config; unknown keys are errors, not ignored."""
        leaf = {"ingest": IngestConfig, "tune": TuneConfig, "search": SearchConfig}[info.field_name]
        if not isinstance(value, dict):
            return value
        known = {f.name for f in dataclasses.fields(leaf)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        try:
            return TypeAdapter(leaf).validate_python(value)
        except (IngestConfigError, TuneConfigError) as exc:
            raise ValueError(str(exc)) from exc

    @model_validator(mode="after")
    def _distinct_keys(self) -> Settings:
        problem = shared_keys(self)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="before")
    @classmethod
    def _index_url(cls, data: Any) -> Any:
        """``index = "postgresql://..."`` (``--index URL``) names the PostgreSQL store; an index
        directory given beside a ``store`` wins over it."""
        if isinstance(data, dict) and data.get("index") is not None:
            data = dict(data)
            if ingest.is_postgres(str(data["index"])):
                data["store"] = str(data.pop("index"))
            else:
                data["store"] = None
        return data

    @field_validator("store", mode="after")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value is not None and not ingest.is_postgres(value):
            raise ValueError(f"store must be a PostgreSQL URL (postgresql://USER@HOST/DB), not {value!r}")
        return value.strip() if value is not None else None

    @field_validator("home", "index", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=_toml_path()))

    # Derived locations: one place decides the HYBRID_HOME layout.
    @property
    def index_dir(self) -> Path:
        return self.index if self.index is not None else self.home / "index"

    @property
    def index_location(self) -> Path | str:
        """Where the index lives: the ``store`` URL, else the index directory."""
        return self.store if self.store is not None else self.index_dir

    @property
    def index_description(self) -> str:
        """The index location for messages and logs (a URL without its password)."""
        return ingest.describe(self.index_location)

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def uploads_dir(self) -> Path:
        """PDFs sent to ``POST /v1/documents``, one folder per content hash."""
        return self.home / "uploads"

    @property
    def jobs_dir(self) -> Path:
        """The state of background jobs (uploads being ingested)."""
        return self.home / "jobs"

    @property
    def fast_decode_dir(self) -> Path:
        """Compiled fast-decoding packages, one per model."""
        return self.home / "cache" / "fast-decode"

    @property
    def evals_dir(self) -> Path:
        """Where ``hybrid eval`` writes a scorecard without ``--out``."""
        return self.home / "evals"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from defaults, ``hybrid.toml``, ``HYBRID_*`` variables and overrides.

    Overrides whose value is ``None`` are ignored, so CLI flags that were not given fall through.

    Raises:
        ConfigError: listing every invalid or unknown key at once.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration ({_toml_path()} / HYBRID_* / flags): {problems}") from exc


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (localhost, 127.0.0.0/8, ::1, ::ffff:127.x)."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def shared_keys(settings: Settings) -> str | None:
    """Why the keys are unsafe, or None: the admin key must differ from the query key, or every
    query client could activate adapters and upload documents. Settings refuse such keys when
    they are built; ``serve.create_app`` checks again, for settings changed with ``model_copy``."""
    api, admin = settings.api_key, settings.admin_key
    if api is not None and admin is not None and api.get_secret_value() == admin.get_secret_value():
        return (
            "HYBRID_ADMIN_KEY is the same as HYBRID_API_KEY, so every query client could activate "
            "adapters and upload documents; give the admin key a value of its own"
        )
    return None


def unsafe_bind(settings: Settings, host: str) -> str | None:
    """Why serving on ``host`` with these settings would be unsafe, or None when it is not:
    an address other than loopback needs HYBRID_API_KEY, or ``insecure`` to accept anyone."""
    if is_loopback(host) or settings.api_key is not None or settings.insecure:
        return None
    return (
        f"refusing to listen on {host} without keys: set HYBRID_API_KEY (and HYBRID_ADMIN_KEY), "
        "or pass --insecure (HYBRID_INSECURE=1) to accept anyone on the network"
    )
