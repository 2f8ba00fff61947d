"""One typed settings object, loaded once at start-up (STYLE.md §11).

Sources, later ones win: the defaults below, an optional TOML file (``flare start --config
flare.toml``, keys as in ``flare.example.toml``), then ``FLARE_<KEY>`` environment variables.
Nothing else in Flare reads ``os.environ`` for its configuration.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
TABLE_STORES = ("rocksdb", "memory")
#: Room around a document body in the records that carry it (see ``max_record_bytes``);
#: URLs are at most a few KiB (tables/limits.py).
RECORD_OVERHEAD = 64 * 1024


class ConfigError(ValueError):
    """A setting has a value Flare cannot run with; the message names the key."""


@dataclass(frozen=True)
class Settings:
    #: Kafka bootstrap servers, comma separated.
    kafka_bootstrap: str = "127.0.0.1:9092"
    #: Where the HTTP API listens.
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    #: How other Flare processes reach this one's API (to ask the owner of a document);
    #: empty: http://<http_host>:<http_port>.
    advertised_url: str = ""
    #: Every topic name starts with this prefix (SPEC §10).
    topic_prefix: str = "flare"
    #: Application id: processes with the same id share the partitions (it names the
    #: consumer groups and the tables' changelog topics).
    app_id: str = "flare"
    #: Partitions of the documents and deliveries topics (set once, before first start).
    partitions: int = 4
    #: Replication factor of Flare's topics (3 on a production cluster).
    replication_factor: int = 1
    #: min.insync.replicas of Flare's topics: how many replicas an acks=all write needs
    #: (0: one less than replication_factor, at least 1 — 2 on a 3-broker cluster).
    min_insync_replicas: int = 0
    #: Local files of the stream processor: the table stores, under
    #: ``<data_dir>/<app id>/<host>_<port>/`` (streams/store.py). Losing them costs a
    #: rebuild from the changelog topics, nothing else.
    data_dir: str = "var/data"
    #: Where the stages keep their tables: ``memory`` (every start reads the whole
    #: changelog) or ``rocksdb`` (on disk, a restart reads only the changelog's tail,
    #: memory bounded by the caches below).
    table_store: str = "rocksdb"
    #: RocksDB block cache shared by every store of the process, in bytes.
    store_cache_bytes: int = 128 * 1024 * 1024
    #: RocksDB memtables of every store of the process together, in bytes.
    store_write_buffer_bytes: int = 64 * 1024 * 1024
    #: Seconds after which a store that was not kept up to date is rebuilt rather than
    #: caught up: under the changelogs' ``delete.retention.ms`` (a day), after which Kafka
    #: may have dropped tombstones the store never saw.
    store_max_age: float = 12 * 3600.0
    log_level: str = "info"
    #: Consumer group session timeout in seconds (Kafka's 45 s default notices a dead
    #: process slowly: the registry's deciding group waits that long before a takeover).
    session_timeout: float = 10.0
    #: Largest accepted request body in bytes (SPEC §2).
    max_body_bytes: int = 1024 * 1024
    #: Bearer tokens; empty means no authentication (SPEC §2).
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    #: Allow subscriber URLs on loopback/private addresses (SPEC §7 extension).
    allow_private_targets: bool = False
    #: Timeout of one delivery attempt in seconds (SPEC §9.2).
    delivery_timeout: float = 10.0
    #: Most notification requests in flight at once, per process (across keys, §9.4).
    delivery_concurrency: int = 256
    #: Milliseconds the API's producer (PUTs, registry commands) waits to fill a batch:
    #: latency against fewer, bigger requests to the broker (docs/benchmarks.md).
    api_linger_ms: int = 2
    #: The same for the stages' producers (offers, outcomes, changelogs).
    stage_linger_ms: int = 5
    #: Seconds a deleted document's mark stays in the documents table (it keeps a change
    #: read again after a crash from creating the document again); far longer than any
    #: crash replay, which is seconds.
    delete_mark_ttl: float = 7 * 24 * 3600.0
    #: ``text`` lines, or ``json``: one JSON object per line (app/logs.py).
    log_format: str = "text"
    #: Most bytes of a subscriber's answer read per attempt; only the status is kept
    #: (SPEC §11a).
    delivery_max_response_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"log_format must be one of {', '.join(LOG_FORMATS)}, not {self.log_format!r}")
        if not 0 < self.http_port < 65536:
            raise ConfigError(f"http_port must be a TCP port, not {self.http_port}")
        if self.partitions < 1 or self.replication_factor < 1:
            raise ConfigError("partitions and replication_factor must be at least 1")
        if not 0 <= self.min_insync_replicas <= self.replication_factor:
            raise ConfigError("min_insync_replicas must be between 1 and replication_factor "
                              "(or 0: replication_factor - 1)")
        if self.api_linger_ms < 0 or self.stage_linger_ms < 0:
            raise ConfigError("api_linger_ms and stage_linger_ms must not be negative")
        if self.delivery_concurrency < 1:
            raise ConfigError("delivery_concurrency must be at least 1")
        if self.table_store not in TABLE_STORES:
            raise ConfigError(f"table_store must be one of {', '.join(TABLE_STORES)}, not {self.table_store!r}")
        if self.store_cache_bytes < 1 << 20 or self.store_write_buffer_bytes < 4 << 20:
            raise ConfigError("store_cache_bytes must be at least 1 MiB and "
                              "store_write_buffer_bytes at least 4 MiB")
        if self.store_max_age <= 0:
            raise ConfigError("store_max_age must be positive")
        if self.delete_mark_ttl <= 0:
            raise ConfigError("delete_mark_ttl must be positive")
        if self.session_timeout <= 0 or self.delivery_timeout <= 0:
            raise ConfigError("session_timeout and delivery_timeout must be positive")
        if not self.kafka_bootstrap.strip():
            raise ConfigError("kafka_bootstrap must name at least one broker")
        if self.delivery_max_response_bytes < 0:
            raise ConfigError("delivery_max_response_bytes must not be negative")
        if self.max_body_bytes < 1:
            raise ConfigError("max_body_bytes must be at least 1")
        # An empty token would match "Authorization: Bearer " (SPEC §2).
        for token in self.api_tokens:
            if not token.strip() or token != token.strip():
                raise ConfigError("api_tokens: a token must not be empty or have spaces around it")
            if not (token.isascii() and token.isprintable()):
                # It travels in headers and the dashboard's cookie: printable ASCII only.
                raise ConfigError("api_tokens: a token must be printable ASCII")

    @property
    def insync_replicas(self) -> int:
        """min.insync.replicas for Flare's topics (``min_insync_replicas``, 0: automatic)."""
        return self.min_insync_replicas or max(1, self.replication_factor - 1)

    @property
    def canonical_url(self) -> str:
        if self.advertised_url:
            return self.advertised_url.rstrip("/")
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "", "::") else self.http_host
        return f"http://{host}:{self.http_port}"

    @property
    def max_record_bytes(self) -> int:
        """The largest Kafka record Flare writes: a body of ``max_body_bytes`` plus what
        wraps it (the document URL, the change or offer envelope, table metadata). The
        producers and the topics are set to carry it, so a body the API accepts is never
        refused by Kafka for its size (SPEC §11a: 413, never 503)."""
        return self.max_body_bytes + RECORD_OVERHEAD

    @property
    def internal_token(self) -> str | None:
        """The credential one Flare process shows another (forwarded reads, fan-outs)."""
        return self.api_tokens[0] if self.api_tokens else None

    def topic(self, name: str) -> str:
        """The full name of one of Flare's topics: ``<prefix>.<name>``."""
        return f"{self.topic_prefix}.{name}"

    def masked(self) -> dict[str, Any]:
        """The settings for printing, with secrets hidden."""
        shown = dataclasses.asdict(self)
        shown["api_tokens"] = ["***"] * len(self.api_tokens)
        return shown


def _coerce(name: str, raw: Any, kind: type) -> Any:
    """Turn a TOML or environment value into the field's type, or say which key is wrong."""
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind is tuple:
            if isinstance(raw, (list, tuple)):
                return tuple(str(x) for x in raw)
            if not str(raw).strip():
                return ()
            # Empty items are kept, for __post_init__ to refuse ("a,,b" is a mistake).
            return tuple(t.strip() for t in str(raw).split(","))
        return kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: cannot read {raw!r} as {kind.__name__}") from None


_KINDS = {"int": int, "float": float, "str": str, "bool": bool, "tuple[str, ...]": tuple}


def load(config_file: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then the TOML file, then ``FLARE_*`` variables."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    known = {f.name: _KINDS[f.type] for f in dataclasses.fields(Settings)}
    if config_file:
        path = Path(config_file)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        for key, raw in data.items():
            if key not in known:
                raise ConfigError(f"{path}: unknown key {key!r}")
            values[key] = _coerce(key, raw, known[key])
    for key, kind in known.items():
        env_name = f"FLARE_{key.upper()}"
        if env_name in environ:
            values[key] = _coerce(env_name, environ[env_name], kind)
    return Settings(**values)
