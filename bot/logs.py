"""Logging: secrets never reach a log line, an error message or a stored error.

``redact(text)`` replaces the bot token (and anything shaped like a bot token:
digits, a colon, 30 or more letters) with ``<redacted>``. The token reaches
texts inside URLs (``…/bot123:ABC…/sendMessage``) that aiohttp and aiogram put
in their exceptions, e.g. after a redirect loop or with a malformed
``TELEGRAM_API_URL``. :class:`RedactingFilter` applies it to every record a
handler writes (message, arguments, traceback); :func:`install` puts it on the
root logger's handlers and on uncaught exceptions.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from datetime import UTC
from types import TracebackType

from pydantic import SecretStr

REDACTED = "<redacted>"

# Bot tokens from @BotFather: the bot's id, a colon, 35 letters, digits, _ or -.
_TOKEN_SHAPE = re.compile(r"\d{3,}:[A-Za-z0-9_-]{30,}")
_secrets: set[str] = set()


def _plain(secret: str | SecretStr | None) -> str | None:
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    return secret or None


def register_secret(secret: str | SecretStr | None) -> None:
    """Remember a secret (the bot token, a webhook secret) so that :func:`redact` hides it everywhere."""
    value = _plain(secret)
    if value and len(value) >= 6:  # a value that short would blank out ordinary words
        _secrets.add(value)


def redact(text: str, *secrets: str | SecretStr | None) -> str:
    """``text`` without the registered secrets, the ``secrets`` given, or anything shaped like a bot token."""
    for secret in sorted({s for s in map(_plain, secrets) if s} | _secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _TOKEN_SHAPE.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """Rewrites a record so that its message and traceback are redacted (keeps every record)."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: leave it to the handler to report
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))


def install(*secrets: str | SecretStr | None) -> None:
    """Redact ``secrets`` (and token-shaped strings) in every log handler of the root logger and in
    tracebacks of uncaught exceptions. Call after the handlers are set up (``logging.basicConfig``)."""
    for secret in secrets:
        register_secret(secret)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    sys.excepthook = _excepthook


# ----- JSON lines (LOG_FORMAT=json) ---------------------------------------------------------

# Context a log call may pass with ``extra={...}``; nothing else of a record is written,
# so no personal data reaches a JSON line unless a message itself carries it.
JSON_FIELDS = ("update_id", "chat_id", "handler", "duration_ms", "job", "outbox_id")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the :data:`JSON_FIELDS` given, and the
    (redacted) traceback."""

    def format(self, record: logging.LogRecord) -> str:
        import json
        from datetime import datetime

        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in JSON_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            entry["traceback"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def use_json_lines() -> None:
    """Every handler of the root logger writes JSON lines (``LOG_FORMAT=json``)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())
