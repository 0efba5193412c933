"""Ids carried in callback data, with bounds.

Callback data comes from the client and can be forged: ``myo:again:99999…``
must not reach the database (SQLite raises OverflowError past 64 bits,
PostgreSQL past the 32 bits of an ``Integer`` column). A CallbackData field
typed :data:`RowId` refuses such a value, so the button's filter does not
match and the press gets "This button has expired" (``handlers.common``).

Telegram does not check ``data`` against the buttons of the message it came from:
https://core.telegram.org/bots/api#callbackquery
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

ROW_ID_MAX = 2**31 - 1  # an Integer primary key: 32 bits on PostgreSQL
BIG_ID_MAX = 2**63 - 1  # a BigInteger column (Telegram message and chat ids)

RowId = Annotated[int, Field(ge=0, le=ROW_ID_MAX)]
MessageId = Annotated[int, Field(ge=0, le=BIG_ID_MAX)]


def parse_row_id(text: str) -> int | None:
    """A row id written in a string field of callback data, or None when it is not one."""
    if not text.isascii() or not text.isdigit() or len(text) > len(str(ROW_ID_MAX)):
        return None
    value = int(text)
    return value if value <= ROW_ID_MAX else None
