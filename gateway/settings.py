"""All of GenGuard's configuration: one ``Settings`` object, ``GENGUARD_`` environment variables.

Nested sections use a double underscore: ``GENGUARD_UPSTREAM__BASE_URL``. Settings are built once
(in the CLI or the app factory) and passed down; nothing reads the environment elsewhere.
Outside development, insecure defaults are refused at start-up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "AuditSettings",
    "ClassifierSettings",
    "DiffusersSettings",
    "InsecureSettingsError",
    "JobSettings",
    "LimitSettings",
    "ObservabilitySettings",
    "ProvenanceSettings",
    "Settings",
    "StorageSettings",
    "UpstreamSettings",
    "sentinel_addresses",
]


class InsecureSettingsError(ValueError):
    """A development-only convenience was configured in production mode."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpstreamSettings(_Section):
    """An OpenAI-compatible upstream generator (leave ``base_url`` unset to run offline)."""

    base_url: str | None = None
    api_key: SecretStr | None = None
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 120.0
    image_models: tuple[str, ...] = ("gpt-image-1", "dall-e-3", "dall-e-2")
    speech_models: tuple[str, ...] = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")


class ProvenanceSettings(_Section):
    """C2PA signing credentials. Unset paths: a development CA under the data dir (untrusted).

    With ``external_signer_url`` the private key stays in a signing service (KMS / HSM front
    end, or ``python -m provenance.signing_service``); the gateway has only ``cert_chain_path``.
    """

    cert_chain_path: Path | None = None
    private_key_path: Path | None = None
    external_signer_url: str | None = None  # e.g. http://127.0.0.1:8701
    external_signer_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    trust_anchors_path: Path | None = None
    thumbnail: bool = False
    # key of the audio watermark; unset: a development key derived from the data dir's dev CA
    watermark_key: SecretStr | None = None
    tsa_url: str | None = None  # RFC 3161 time-stamp authority (a network call per signature)

    @model_validator(mode="after")
    def _one_key_source(self) -> ProvenanceSettings:
        if self.external_signer_url is None:
            return self
        if self.private_key_path is not None:
            raise ValueError(
                "GENGUARD_PROVENANCE__PRIVATE_KEY_PATH and __EXTERNAL_SIGNER_URL exclude each "
                "other: with an external signer the key stays in the signing service"
            )
        if self.cert_chain_path is None:
            raise ValueError(
                "GENGUARD_PROVENANCE__CERT_CHAIN_PATH is required with __EXTERNAL_SIGNER_URL"
            )
        if self.watermark_key is None:
            raise ValueError(
                "GENGUARD_PROVENANCE__WATERMARK_KEY is required with __EXTERNAL_SIGNER_URL "
                "(it cannot be derived from a private key the gateway does not hold)"
            )
        return self


class ClassifierSettings(_Section):
    nudenet_threads: Annotated[int, Field(ge=1, le=64)] = 1
    # clip_concepts: an open_clip architecture and its local checkpoint (never downloaded);
    # optionally a LAION-style MLP head on the image embedding scoring ``clip_head_category``
    clip_model: Annotated[str, Field(min_length=1)] = "ViT-B-32"
    clip_weights: Path | None = None
    clip_head: Path | None = None
    clip_head_category: Annotated[str, Field(min_length=1)] = "sexual"
    # transcript: the speech recogniser; the Whisper ones load a local model directory (never
    # downloaded); threads: faster_whisper's CTranslate2 threads (torch keeps its own setting)
    recognizer: Literal["pocketsphinx", "faster_whisper", "transformers_whisper"] = "pocketsphinx"
    recognizer_path: Path | None = None
    recognizer_threads: Annotated[int, Field(ge=1, le=64)] = 1


class DiffusersSettings(_Section):
    """The local diffusion model (``image_generator = "diffusers_local"``) and its variants."""

    model_path: Path | None = None  # a local diffusers pipeline directory (never the hub)
    model_name: str = "local-sd"
    variants_dir: Path | None = None  # *.safetensors variant patches (genguard erase …)
    steps: Annotated[int, Field(ge=1, le=200)] = 25
    guidance_scale: Annotated[float, Field(ge=1, le=30)] = 7.5
    device: str = "cpu"


class JobSettings(_Section):
    """Asynchronous jobs (``POST /v1/jobs``, ``genguard worker``; docs/operations.md).

    ``timeout_s`` bounds one attempt; a worker that dies holding a job loses it to another
    worker ``timeout_s + lease_margin_s`` after the attempt started (RQ's abandoned-job
    clean-up, run every ``maintenance_interval_s`` by some worker). A job is attempted at most
    ``max_attempts`` times, then audited as failed. Webhooks are signed with HMAC-SHA256 under
    a per-tenant key derived from ``webhook_secret`` (unset: a development key in the data dir).
    """

    image_queue: Annotated[str, Field(min_length=1, max_length=100)] = "genguard-image"
    speech_queue: Annotated[str, Field(min_length=1, max_length=100)] = "genguard-speech"
    timeout_s: Annotated[int, Field(ge=2, le=86_400)] = 600
    lease_margin_s: Annotated[int, Field(ge=1, le=3600)] = 30
    maintenance_interval_s: Annotated[int, Field(ge=1, le=3600)] = 10
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    result_ttl_s: Annotated[int, Field(ge=60)] = 7 * 86_400
    webhook_secret: SecretStr | None = None
    webhook_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    webhook_backoff_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    webhook_timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0


class AuditSettings(_Section):
    """The audit sink: how long to wait for Redis before spooling, replay, retention."""

    write_timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    replay_interval_s: Annotated[float, Field(gt=0, le=3600)] = 2.0
    retention_days: Annotated[int, Field(ge=1)] | None = None
    checkpoint_key: SecretStr | None = None  # hex; unset: generated in the data dir (dev only)


class LimitSettings(_Section):
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_000_000
    # uploads of /v1/images/edits and /variations (docs/image-edits.md): the whole request,
    # each file, the pixels of each image (checked from the header, before decoding; at most
    # 8192x8192) and how many images one request may upload
    max_upload_bytes: Annotated[int, Field(ge=1024)] = 50_000_000
    max_input_image_bytes: Annotated[int, Field(ge=1024)] = 20_000_000
    max_input_pixels: Annotated[int, Field(ge=64 * 64, le=8192 * 8192)] = 4096 * 4096
    max_input_images: Annotated[int, Field(ge=1, le=16)] = 4


class BatchingSettings(_Section):
    """Micro-batching (``gateway.batching``): concurrent calls of one model (the MiniLM prompt
    embedding, NudeNet, CLIP) that arrive within ``max_wait_ms`` of the first are merged into
    one model call of at most ``max_batch`` inputs."""

    enabled: bool = True
    max_wait_ms: Annotated[float, Field(ge=0, le=50)] = 2.0
    max_batch: Annotated[int, Field(ge=1, le=256)] = 32


class ObservabilitySettings(_Section):
    """Prometheus ``/metrics``, structured logs and optional OpenTelemetry tracing
    (docs/operations.md, "Observability")."""

    # unset: json in production mode, text in development
    log_format: Literal["json", "text"] | None = None
    # serve /metrics without an API key (only where the port is private); default: a key with
    # the 'metrics' (or 'admin') role, because the labels name tenants and routes
    metrics_public: bool = False
    # spans per request and per stage (needs opentelemetry-sdk; OTEL_EXPORTER_OTLP_* configure
    # the exporter); also on when OTEL_EXPORTER_OTLP_ENDPOINT is set
    otel_enabled: bool = False


class StorageSettings(_Section):
    """Where outputs delivered with ``response_format=url`` are kept, and the key that signs
    their links (unset: a development key generated in the data dir; required in production).

    ``local``: files under ``directory`` (default ``<data dir>/files``); ``s3``: an
    S3-compatible bucket (boto3, ``pip install 'genguard[s3]'``).
    """

    backend: Literal["local", "s3"] = "local"
    directory: Path | None = None
    url_secret: SecretStr | None = None
    sweep_interval_s: Annotated[float, Field(gt=0, le=86_400)] = 60.0
    s3_bucket: str | None = None
    s3_prefix: str = "genguard/"
    s3_endpoint_url: str | None = None  # e.g. a MinIO or Ceph endpoint; unset: AWS
    s3_region: str | None = None
    s3_access_key_id: SecretStr | None = None  # unset: boto3's default credential chain
    s3_secret_access_key: SecretStr | None = None

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> StorageSettings:
        if self.backend == "s3" and not self.s3_bucket:
            raise ValueError("GENGUARD_STORAGE__S3_BUCKET is required when the backend is 's3'")
        return self


class Settings(BaseSettings):
    """GenGuard settings (environment: ``GENGUARD_*``; nested: ``GENGUARD_SECTION__FIELD``)."""

    model_config = SettingsConfigDict(
        env_prefix="GENGUARD_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    mode: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    public_base_url: str | None = None
    data_dir: Path = Path(".genguard")
    redis_url: SecretStr | None = None  # redis:// or rediss://; with redis_cluster, any node
    redis_cluster: bool = False  # redis_url names one node of a Redis Cluster (docs/operations.md)
    # Redis Sentinel instead of redis_url: "host:port,host:port" and the monitored master's name
    redis_sentinels: str | None = None
    redis_sentinel_master: str | None = None
    redis_sentinel_password: SecretStr | None = None  # AUTH of the sentinels themselves
    redis_password: SecretStr | None = None  # AUTH of the master and replicas found via Sentinel
    bootstrap_key: SecretStr | None = None
    policy_file: Path | None = None
    # redis: versioned, approved, hot-reloaded (policy_file seeds version 1); file: fixed
    policy_store: Literal["redis", "file"] = "redis"
    workers: Annotated[int, Field(ge=1, le=256)] = max(2, min(8, os.cpu_count() or 2))
    image_generator: Literal["procedural", "openai_compat", "diffusers_local"] = "procedural"
    speech_generator: Literal["espeak", "openai_compat"] = "espeak"
    model_aliases: dict[str, str] = Field(default_factory=dict)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # while Redis is unreachable, keys verified this recently are still accepted (0 = off)
    key_outage_grace_s: Annotated[float, Field(ge=0, le=86_400)] = 300.0
    # keys verified this recently are accepted without a Redis round trip; a revocation reaches
    # other processes within this many seconds (0 = check Redis on every request)
    key_cache_s: Annotated[float, Field(ge=0, le=300)] = 5.0
    upstream: UpstreamSettings = UpstreamSettings()
    provenance: ProvenanceSettings = ProvenanceSettings()
    classifiers: ClassifierSettings = ClassifierSettings()
    limits: LimitSettings = LimitSettings()
    storage: StorageSettings = StorageSettings()
    batching: BatchingSettings = BatchingSettings()
    audit: AuditSettings = AuditSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    diffusers: DiffusersSettings = DiffusersSettings()
    jobs: JobSettings = JobSettings()

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        uses_upstream = "openai_compat" in (self.image_generator, self.speech_generator)
        if uses_upstream and not self.upstream.base_url:
            raise ValueError(
                "GENGUARD_UPSTREAM__BASE_URL is required when a generator is 'openai_compat'"
            )
        if self.image_generator == "diffusers_local" and self.diffusers.model_path is None:
            raise ValueError(
                "GENGUARD_DIFFUSERS__MODEL_PATH is required when image_generator is "
                "'diffusers_local'"
            )
        if self.mode == "production":
            self._enforce_production()
        return self

    @model_validator(mode="after")
    def _redis_topology(self) -> Settings:
        """One way to reach Redis: a URL (single node or cluster seed), or Sentinel."""
        if self.redis_sentinels is not None:
            if self.redis_url is not None:
                raise ValueError(
                    "GENGUARD_REDIS_URL and GENGUARD_REDIS_SENTINELS exclude each other: "
                    "set one (Sentinel finds the master itself)"
                )
            if self.redis_cluster:
                raise ValueError("GENGUARD_REDIS_CLUSTER cannot be combined with Sentinel")
            if not self.redis_sentinel_master:
                raise ValueError(
                    "GENGUARD_REDIS_SENTINEL_MASTER (the master name the sentinels monitor) is "
                    "required with GENGUARD_REDIS_SENTINELS"
                )
            sentinel_addresses(self.redis_sentinels)  # raises naming the bad entry
        elif self.redis_sentinel_master or self.redis_sentinel_password or self.redis_password:
            raise ValueError(
                "GENGUARD_REDIS_SENTINEL_MASTER, GENGUARD_REDIS_SENTINEL_PASSWORD and "
                "GENGUARD_REDIS_PASSWORD apply only with GENGUARD_REDIS_SENTINELS (put a "
                "password for GENGUARD_REDIS_URL in the URL)"
            )
        if self.redis_cluster and self.redis_url is None:
            raise ValueError("GENGUARD_REDIS_CLUSTER needs GENGUARD_REDIS_URL (any cluster node)")
        return self

    def _enforce_production(self) -> None:
        problems = []
        if self.bootstrap_key is not None:
            problems.append(
                "GENGUARD_BOOTSTRAP_KEY is for development only; create keys with "
                "'genguard keys create'"
            )
        if self.redis_url is None and self.redis_sentinels is None:
            problems.append(
                "GENGUARD_REDIS_URL (or GENGUARD_REDIS_SENTINELS) must point at a managed Redis "
                "in production"
            )
        p = self.provenance
        if p.cert_chain_path is None or (
            p.private_key_path is None and p.external_signer_url is None
        ):
            problems.append(
                "GENGUARD_PROVENANCE__CERT_CHAIN_PATH and "
                "GENGUARD_PROVENANCE__PRIVATE_KEY_PATH (or __EXTERNAL_SIGNER_URL) are required "
                "in production (the development CA is untrusted)"
            )
        if self.audit.retention_days is not None and self.audit.checkpoint_key is None:
            problems.append(
                "GENGUARD_AUDIT__CHECKPOINT_KEY is required in production when "
                "GENGUARD_AUDIT__RETENTION_DAYS is set (it signs retention checkpoints)"
            )
        if self.storage.url_secret is None:
            problems.append(
                "GENGUARD_STORAGE__URL_SECRET is required in production (it signs the links of "
                "outputs delivered with response_format=url)"
            )
        if problems:
            raise InsecureSettingsError(
                "refusing to start in production mode: " + "; ".join(problems)
            )

    @property
    def development(self) -> bool:
        return self.mode == "development"

    @property
    def json_logs(self) -> bool:
        """One JSON object per log line (``observability.log_format``; unset: production)."""
        configured = self.observability.log_format
        return configured == "json" if configured else self.mode == "production"

    @property
    def redis_configured(self) -> bool:
        """True when an external Redis is set (URL, cluster or Sentinel); else embedded."""
        return self.redis_url is not None or self.redis_sentinels is not None


def sentinel_addresses(value: str) -> list[tuple[str, int]]:
    """``"host:port,host:port"`` as pairs; ``ValueError`` naming the setting and the entry."""
    addresses = []
    for entry in (part.strip() for part in value.split(",")):
        host, sep, port = entry.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"GENGUARD_REDIS_SENTINELS: {entry!r} is not host:port (port 1-65535); "
                "expected e.g. 'sentinel-1:26379,sentinel-2:26379'"
            )
        addresses.append((host.strip("[]"), int(port)))
    return addresses
