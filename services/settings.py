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
    postgres_pool_size: int = Field(default=10, ge=1)
    postgres_max_overflow: int = Field(default=20, ge=0)
    aggregate_cache_size: int = Field(
        default=10_000, ge=1, description="Aggregates kept in memory (brought up to date on read)."
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("LEDGER_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    kafka_topic_prefix: str = Field(default="sales", description="Topics are PREFIX.<aggregate>.")
    kafka_partitions: int = Field(default=3, ge=1)
    token_ttl_days: float = Field(
        default=90, gt=0, description="How long a new API token works, in days."
    )
    integrity_key: str = Field(
        default="",
        description="Secret for signing ledger digests (HMAC-SHA256); required to issue or "
        "check digests that outlive the process.",
    )

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
                POSTGRES_POOL_SIZE=str(self.postgres_pool_size),
                POSTGRES_MAX_OVERFLOW=str(self.postgres_max_overflow),
                POSTGRES_ORIGINATOR_ID_TYPE="uuid",
            )
        else:
            env.update(
                PERSISTENCE_MODULE="services.persistence:LedgerSQLiteFactory",
                SQLITE_DBNAME=self.sqlite_path,
            )
        return env
