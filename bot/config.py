"""Configuration from the environment (and an optional ``.env`` file).

A bad value stops start-up with one line naming the variable (exit code 2),
see :func:`load_settings`.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.rules.sla import BusinessHoursError, parse_business_hours
from bot.rules.tickets import PRIORITIES, SlaPolicy, Targets

Language = Literal["en", "zh"]
LANGUAGES: tuple[str, ...] = ("en", "zh")


def _id_set(value: object) -> object:
    """Accept ``1,2,3`` (or spaces) as well as a list."""
    if isinstance(value, str):
        parts = [p for p in value.replace(";", ",").replace(" ", ",").split(",") if p]
        return {int(p) for p in parts}
    if isinstance(value, int):
        return {value}
    return value


class Settings(BaseSettings):
    # env_ignore_empty: ``STAFF_CHAT_ID=`` (blank, as in a .env template) means "not set".
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      env_ignore_empty=True)

    # Telegram
    bot_token: SecretStr | None = None
    telegram_api_url: str | None = None
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    webhook_path: str = "/telegram/webhook"
    webhook_secret: SecretStr | None = None
    webhook_host: str = "0.0.0.0"
    webhook_port: int = Field(8080, ge=1, le=65535)

    # Storage
    database_url: str = "sqlite+aiosqlite:///./data/caredesk.sqlite3"
    redis_url: str | None = None

    # People
    staff_chat_id: int | None = None
    staff_ids: Annotated[set[int], NoDecode] = set()
    manager_ids: Annotated[set[int], NoDecode] = set()

    # Locale
    default_language: Language = "en"
    # The staff chat's language (cards, notices, SLA warnings, alerts) until staff choose one there with
    # /language; blank: DEFAULT_LANGUAGE.
    staff_language: Language | None = None
    default_timezone: str = "UTC"
    default_region: str = "CN"
    currency: str = "CNY"

    # Complaints and response targets, minutes (issue: complaints)
    sla_first_response_high: int = Field(30, ge=1)
    sla_resolution_high: int = Field(8 * 60, ge=1)
    sla_first_response_normal: int = Field(2 * 60, ge=1)
    sla_resolution_normal: int = Field(24 * 60, ge=1)
    sla_first_response_low: int = Field(8 * 60, ge=1)
    sla_resolution_low: int = Field(72 * 60, ge=1)
    sla_warn_ratio: float = Field(0.8, gt=0, lt=1)
    # Opening hours, e.g. "mon-fri 09:00-18:00"; empty = around the clock.
    business_hours: str = ""
    ticket_autoclose_days: int = Field(3, ge=1)
    ticket_reopen_days: int = Field(7, ge=1)
    # Value-based priority (a top customer's complaint is high) only once the shop has this much
    # history in the last 12 months: customers with an order, and orders.
    value_priority_min_customers: int = Field(30, ge=0)
    value_priority_min_orders: int = Field(100, ge=0)
    # Staff notices and escalations outside BUSINESS_HOURS wait for the opening, except for tickets
    # of these priorities (comma-separated high, normal, low; blank: none goes after hours).
    after_hours_priorities: str = "high"

    # Care engine (issue: care engine)
    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(9, 0)
    care_cap_per_day: int = Field(1, ge=0)
    care_cap_per_week: int = Field(3, ge=0)
    reorder_days_before: int = Field(2, ge=0)
    birthday_hour: int = Field(10, ge=0, le=23)
    survey_days_after_delivery: int = Field(2, ge=0)
    winback_min_days: int = Field(45, ge=1)
    winback_repeat_days: int = Field(60, ge=1)
    attribution_days: int = Field(7, ge=1)
    # Kept under Telegram's limits (about 30 a second overall, 1 a second per chat, 20 a minute per group):
    # https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this
    rate_global_per_second: float = Field(25, gt=0)
    rate_chat_per_second: float = Field(1, gt=0)
    rate_group_per_minute: float = Field(18, gt=0)
    outbox_max_attempts: int = Field(5, ge=1)  # network errors / 5xx: tries before a row fails
    outbox_retry_seconds: float = Field(5, gt=0)  # first backoff; doubles per attempt, at most 1 h

    # Replicas and operations (issue: scale-out)
    # This replica's name in leases and outbox claims; default host:pid.
    instance_id: str | None = Field(None, min_length=1, max_length=100)
    # Singleton work (planning, SLA checks, digests, recovery) runs on the lease holder;
    # another replica takes over at most this many seconds after the holder dies.
    lease_seconds: float = Field(30, ge=3)
    # Polling mode: serve /healthz, /readyz and /metrics on this port (webhook mode: on the webhook's port).
    health_port: int | None = Field(None, ge=1, le=65535)
    log_format: Literal["text", "json"] = "text"

    # Reports (issue: reports)
    abc_a_share: float = Field(0.75, gt=0, lt=1)
    abc_b_share: float = Field(0.20, gt=0, lt=1)
    report_top_n: int = Field(10, ge=1, le=30)  # rows in "top" lists
    churn_grace_days: int = Field(3, ge=0)  # days past the expected next order before /churn lists a customer
    # /churn's window for the usual interval; the default is the care engine's HISTORY_DAYS (the same prediction).
    churn_lookback_days: int = Field(365, ge=30)  # no two orders in it: no rhythm (lost, not at risk)
    digest_default_hour: int = Field(8, ge=0, le=23)

    # Sandbox
    sandbox_files_dir: Path = Path("./sandbox-files")

    @field_validator("staff_ids", "manager_ids", mode="before")
    @classmethod
    def _parse_ids(cls, value: object) -> object:
        try:
            return _id_set(value)
        except ValueError as exc:
            raise ValueError("expected Telegram user ids separated by commas, e.g. 123,456") from exc

    @field_validator("default_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. Asia/Shanghai)") from exc
        return value

    @field_validator("default_region")
    @classmethod
    def _check_region(cls, value: str) -> str:
        value = value.upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {value!r} (a two-letter country code, e.g. CN)")
        return value

    @field_validator("after_hours_priorities")
    @classmethod
    def _check_after_hours_priorities(cls, value: str) -> str:
        codes = [c.strip().lower() for c in value.split(",") if c.strip()]
        wrong = [c for c in codes if c not in ("high", "normal", "low")]
        if wrong:
            raise ValueError(f"not a priority: {', '.join(wrong)} (use high, normal, low)")
        return ",".join(codes)

    @property
    def after_hours_priority_set(self) -> frozenset[str]:
        return frozenset(c for c in self.after_hours_priorities.split(",") if c)

    @property
    def sla(self) -> SlaPolicy:
        """The response targets and the business-hours clock as plain values for bot.rules.tickets."""
        targets = tuple((p, getattr(self, f"sla_first_response_{p}"), getattr(self, f"sla_resolution_{p}"))
                        for p in PRIORITIES)
        return _sla_policy(targets, self.sla_warn_ratio, self.ticket_reopen_days, self.business_hours,
                           self.default_timezone)

    @field_validator("business_hours")
    @classmethod
    def _check_business_hours(cls, value: str) -> str:
        try:
            parse_business_hours(value)
        except BusinessHoursError as exc:
            raise ValueError(f"{exc} (e.g. 'mon-fri 09:00-18:00; sat 10:00-14:00')") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database(cls, value: str) -> str:
        # The async drivers are the only ones CareDesk uses: accept the plain forms too.
        for plain, driver in (("sqlite://", "sqlite+aiosqlite://"), ("postgresql://", "postgresql+asyncpg://"),
                              ("postgres://", "postgresql+asyncpg://")):
            if value.startswith(plain):
                value = driver + value.removeprefix(plain)
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db")
        if value.startswith("postgresql") and not _installed("asyncpg"):
            raise ValueError("PostgreSQL needs the asyncpg driver: pip install 'caredesk[postgres]'")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use redis://host:6379/0 (or rediss://, unix://)")
        if not _installed("redis"):
            raise ValueError("dialog state in Redis needs the redis client: pip install 'caredesk[redis]'")
        return value

    @field_validator("bot_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _TOKEN.match(value.get_secret_value()):
            raise ValueError("does not look like a token from @BotFather (digits, a colon, then letters)")
        return value

    @field_validator("telegram_api_url", "webhook_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        try:
            host = urlsplit(value).hostname
        except ValueError as exc:  # e.g. an unclosed [ in the host
            raise ValueError(f"not a valid URL: {value!r}") from exc
        if not host:
            raise ValueError(f"the URL has no host: {value!r} (e.g. http://localhost:8081)")
        return value

    @field_validator("staff_chat_id")
    @classmethod
    def _check_staff_chat(cls, value: int | None) -> int | None:
        if value is not None and value >= 0:
            raise ValueError(f"{value} is a user, not a group: a group's id is negative (e.g. -1001234567890)")
        return value

    @field_validator("webhook_path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"must start with /, got {value!r}")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _SECRET.match(value.get_secret_value()):
            raise ValueError("1 to 256 characters: letters, digits, _ and - (Telegram's rule)")
        return value

    @model_validator(mode="after")
    def _check_abc_shares(self) -> Settings:
        if self.abc_a_share + self.abc_b_share > 1:
            raise ValueError(f"ABC_B_SHARE: ABC_A_SHARE + ABC_B_SHARE must be at most 1 (class C is the rest), "
                             f"got {self.abc_a_share:g} + {self.abc_b_share:g}")
        return self

    @model_validator(mode="after")
    def _check_webhook(self) -> Settings:
        if self.mode != "webhook":
            return self
        if not self.webhook_url:
            raise ValueError("WEBHOOK_URL: is required when MODE=webhook (the public base URL Telegram posts to)")
        if not self.webhook_secret:
            raise ValueError("WEBHOOK_SECRET: is required when MODE=webhook (requests without it are refused)")
        if self.webhook_url.startswith("http://") and not self.telegram_api_url:
            raise ValueError("WEBHOOK_URL: Telegram only posts to https:// URLs")
        return self

    @field_validator("staff_language", mode="before")
    @classmethod
    def _blank_staff_language(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def staff_default_language(self) -> str:
        """The language of staff-facing texts before anyone chose one (STAFF_LANGUAGE, else DEFAULT_LANGUAGE)."""
        return self.staff_language or self.default_language

    @property
    def all_staff_ids(self) -> set[int]:
        """Managers are staff too."""
        return self.staff_ids | self.manager_ids

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.default_timezone)


@lru_cache(maxsize=16)
def _sla_policy(targets: tuple[tuple[str, int, int], ...], warn_ratio: float, reopen_days: int,
                business_hours: str, tz: str) -> SlaPolicy:
    return SlaPolicy(targets={p: Targets(first, resolution) for p, first, resolution in targets},
                     warn_ratio=warn_ratio, reopen_days=reopen_days, schedule=parse_business_hours(business_hours, tz))


_TOKEN = re.compile(r"^\d+:[\w-]+$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class ConfigError(SystemExit):
    pass


def describe_error(exc: ValidationError) -> str:
    """One line: the first problem, naming its variable (whole-model checks name theirs themselves)."""
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "__root__"]
    message = " ".join(str(first.get("msg", "invalid value")).removeprefix("Value error, ").split())
    what = f"{loc[0].upper()}: {message}" if loc else message
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"caredesk: bad configuration: {what}{suffix}"


def load_settings(**overrides: object) -> Settings:
    """Read settings; on a bad value print one line and exit with code 2."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        raise ConfigError(2) from None
