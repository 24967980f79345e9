"""All configuration, read from the environment (or a ``.env`` file)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the ledger; see the README's Configuration section."""

    model_config = SettingsConfigDict(
        env_prefix="LEDGER_", env_file=".env", extra="ignore", populate_by_name=True
    )

    store: Literal["sqlite", "postgres"] = Field(
        default="sqlite",
        description="Event store: embedded SQLite file (default) or PostgreSQL.",
    )
    sqlite_path: str = Field(default="salesledger.db", description="SQLite database file.")
    postgres_host: str = Field(
        default="127.0.0.1", validation_alias=AliasChoices("LEDGER_POSTGRES_HOST", "POSTGRES_HOST")
    )
    postgres_port: int = Field(
        default=5432, validation_alias=AliasChoices("LEDGER_POSTGRES_PORT", "POSTGRES_PORT")
    )
    postgres_user: str = Field(
        default="ledger", validation_alias=AliasChoices("LEDGER_POSTGRES_USER", "POSTGRES_USER")
    )
    postgres_password: str = Field(
        default="ledger",
        validation_alias=AliasChoices("LEDGER_POSTGRES_PASSWORD", "POSTGRES_PASSWORD"),
    )
    postgres_dbname: str = Field(
        default="ledger", validation_alias=AliasChoices("LEDGER_POSTGRES_DBNAME", "POSTGRES_DBNAME")
    )
    postgres_pool_min: int = Field(
        default=1,
        ge=0,
        description="Connections each pool keeps open once used (pools open on first use).",
    )
    postgres_pool_max: int = Field(
        default=3,
        ge=1,
        description="Event-store pool of one process at most (aggregate and log reads).",
    )
    postgres_append_connections: int = Field(
        default=3,
        ge=1,
        description="Connections one process appends events on at most (besides the pool).",
    )
    read_pool_max: int = Field(
        default=3,
        ge=1,
        description="Read-model pool of one process at most (queries, projection writes, "
        "positions, LISTEN).",
    )
    postgres_pool_timeout: float = Field(
        default=5.0,
        gt=0,
        description="Seconds a request waits for a free connection; then the API answers "
        "503 with Retry-After.",
    )
    ready_lag_max: int = Field(
        default=1000,
        ge=0,
        description="Events a projection may lag behind the head with /readyz still ready.",
    )
    health_file: str = Field(
        default="",
        description="Where a worker (project, relay, seal --follow) writes its heartbeat "
        "and position, for `salesledger health --file`.",
    )
    aggregate_cache_size: int = Field(
        default=10_000, ge=1, description="Aggregates kept in memory (brought up to date on read)."
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("LEDGER_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    kafka_topic_prefix: str = Field(default="sales", description="Topics are PREFIX.<aggregate>.")
    kafka_partitions: int = Field(default=3, ge=1)
    time_zone: str = Field(
        default="UTC",
        description="The organisation's IANA time zone: zone-less times and dates in "
        "``as_of`` and ranges are read in it.",
    )
    max_body_bytes: int = Field(
        default=256 * 1024, ge=1, description="Largest request body the API accepts (413)."
    )
    api_threads: int = Field(
        default=4,
        ge=1,
        le=256,
        description="Threads one API process runs blocking work in (a route's reads and "
        "commands): more only compete with the event loop for the interpreter.",
    )
    idle_transaction_timeout_seconds: float = Field(
        default=60,
        gt=0,
        description="`init-db` ends sessions of the ledger's database idle in a transaction "
        "for longer: they would hold every follower's read horizon.",
    )
    token_ttl_days: float = Field(
        default=90, gt=0, description="How long a new API token works, in days."
    )
    signing_key_file: str = Field(
        default="ledger-signing-key.pem",
        description="PEM file of the Ed25519 key that signs tree heads (made by "
        "`salesledger init`, mode 0600); every sealing process uses the same one.",
    )

    @property
    def connections_at_most(self) -> int:
        """PostgreSQL connections one process of this configuration opens at most: its
        event-store pool, its append connections and its read-model pool."""
        return self.postgres_pool_max + self.postgres_append_connections + self.read_pool_max

    def postgres_conninfo(self, dbname: str | None = None) -> str:
        """The libpq connection string for the configured server; ``dbname`` names
        another database on it."""
        return (
            f"host={self.postgres_host} port={self.postgres_port} user={self.postgres_user} "
            f"password={self.postgres_password} dbname={dbname or self.postgres_dbname}"
        )

    def event_store_env(self) -> dict[str, str]:
        """The ``eventsourcing`` library's environment for this configuration."""
        env = {
            "LEDGER_AGGREGATE_CACHE_SIZE": str(self.aggregate_cache_size),
            "LEDGER_TOKEN_TTL_DAYS": str(self.token_ttl_days),
        }
        if self.store == "postgres":
            env.update(
                PERSISTENCE_MODULE="services.persistence:LedgerPostgresFactory",
                POSTGRES_HOST=self.postgres_host,
                POSTGRES_PORT=str(self.postgres_port),
                POSTGRES_USER=self.postgres_user,
                POSTGRES_PASSWORD=self.postgres_password,
                POSTGRES_DBNAME=self.postgres_dbname,
                POSTGRES_POOL_SIZE=str(self.postgres_pool_min),
                POSTGRES_MAX_OVERFLOW=str(max(0, self.postgres_pool_max - self.postgres_pool_min)),
                POSTGRES_CONNECT_TIMEOUT=str(max(1, round(self.postgres_pool_timeout))),
                LEDGER_APPEND_CONNECTIONS=str(self.postgres_append_connections),
                POSTGRES_ORIGINATOR_ID_TYPE="uuid",
            )
        else:
            env.update(
                PERSISTENCE_MODULE="services.persistence:LedgerSQLiteFactory",
                SQLITE_DBNAME=self.sqlite_path,
            )
        return env
