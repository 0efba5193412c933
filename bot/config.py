"""Configuration from the environment (and an optional ``.env`` file).

A bad value stops start-up with one line naming the variable (exit code 2),
see :func:`load_settings`.
"""

from __future__ import annotations

import sys
from datetime import time
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

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
    default_timezone: str = "UTC"
    default_region: str = "CN"
    currency: str = "CNY"

    # Orders (issue: orders)
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
    rate_global_per_second: float = Field(25, gt=0)
    rate_chat_per_second: float = Field(1, gt=0)
    rate_group_per_minute: float = Field(18, gt=0)
    outbox_max_attempts: int = Field(5, ge=1)  # network errors / 5xx: tries before a row fails
    outbox_retry_seconds: float = Field(5, gt=0)  # first backoff; doubles per attempt, at most 1 h

    # Reports (issue: reports)
    abc_a_share: float = Field(0.75, gt=0, lt=1)
    abc_b_share: float = Field(0.20, gt=0, lt=1)
    report_top_n: int = Field(10, ge=1, le=30)  # rows in "top" lists
    churn_grace_days: int = Field(3, ge=0)  # days past the expected next order before /churn lists a customer
    churn_lookback_days: int = Field(365, ge=30)  # last order older than this: lost, not at risk
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

    @field_validator("business_hours")
    @classmethod
    def _check_business_hours(cls, value: str) -> str:
        from bot.rules.sla import BusinessHoursError, parse_business_hours

        try:
            parse_business_hours(value)
        except BusinessHoursError as exc:
            raise ValueError(f"{exc} (e.g. 'mon-fri 09:00-18:00; sat 10:00-14:00')") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db")
        return value

    @model_validator(mode="after")
    def _check_webhook(self) -> "Settings":
        if self.mode == "webhook" and not self.webhook_url:
            raise ValueError("WEBHOOK_URL is required when MODE=webhook")
        return self

    @property
    def all_staff_ids(self) -> set[int]:
        """Managers are staff too."""
        return self.staff_ids | self.manager_ids

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.default_timezone)


class ConfigError(SystemExit):
    pass


def describe_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "__root__"]
    name = loc[0].upper() if loc else "configuration"
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"caredesk: bad configuration: {name}: {message}{suffix}"


def load_settings(**overrides: object) -> Settings:
    """Read settings; on a bad value print one line and exit with code 2."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        raise ConfigError(2) from None
