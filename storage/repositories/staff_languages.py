"""The languages staff chose for what the bot posts on its own (``staff_languages``).

Read often (every card, notice and reminder), written rarely (/language). The
unit of work loads the staff chat's row and the speaker's own row with the
update's first SELECT (``storage.unit_of_work``) and leaves them in the
session's cache here, so a handler that posts a card reads no more SQL; a job
reads each key once per session.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.dialect import insert_for
from storage.models.staff import STAFF_CHAT_KEY, StaffLanguage, member_key

# session.info key: {StaffLanguage.key: language or None (no row)} known in this session.
CACHE = "staff_languages"

__all__ = ["CACHE", "STAFF_CHAT_KEY", "StaffLanguageRepo", "member_key", "remember"]


def remember(info: dict[str, Any], known: dict[str, str | None]) -> None:
    """Put rows read elsewhere (the unit of work's load) in a session's cache."""
    info.setdefault(CACHE, {}).update(known)


class StaffLanguageRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _cache(self) -> dict[str, str | None]:
        return self.session.info.setdefault(CACHE, {})

    async def many(self, keys: Iterable[str]) -> dict[str, str | None]:
        """The chosen language per key (None: nothing chosen); one SELECT for the keys not known yet."""
        keys = list(dict.fromkeys(keys))
        missing = [key for key in keys if key not in self._cache]
        if missing:
            rows = dict((await self.session.execute(
                select(StaffLanguage.key, StaffLanguage.language).where(StaffLanguage.key.in_(missing)))).all())
            for key in missing:
                self._cache[key] = rows.get(key)
        return {key: self._cache[key] for key in keys}

    async def get(self, key: str) -> str | None:
        return (await self.many([key]))[key]

    async def set(self, key: str, language: str, now: datetime) -> None:
        statement = insert_for(self.session)(StaffLanguage).values(key=key, language=language, updated_at=now)
        await self.session.execute(statement.on_conflict_do_update(
            index_elements=[StaffLanguage.key],
            set_={"language": statement.excluded.language, "updated_at": statement.excluded.updated_at}))
        self._cache[key] = language
