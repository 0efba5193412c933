"""Which language staff read what the bot posts on its own.

* The staff chat (a group) has one language for everyone in it: STAFF_LANGUAGE
  (default DEFAULT_LANGUAGE) until a staff member chooses another there with
  /language. Cards, their buttons, notices, SLA warnings and alerts posted
  there, and edits of those cards, use it.
* A staff member's private chat: the language they chose there with /language,
  for the reminders, alerts and digests sent to them; nothing chosen: the
  staff chat's default (STAFF_LANGUAGE).

Choices are rows of ``staff_languages`` (every replica sees them; a restart
keeps them). Answers to a person's own commands keep using ``texts`` (the
language of the chat they wrote in).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from bot.config import LANGUAGES, Settings
from storage.models.staff import STAFF_CHAT_KEY, member_key
from storage.repositories import Repos


def _valid(lang: str | None, fallback: str) -> str:
    return lang if lang in LANGUAGES else fallback


def is_staff_chat(chat_id: int | None, settings: Settings) -> bool:
    return chat_id is not None and settings.staff_chat_id is not None and chat_id == settings.staff_chat_id


async def staff_chat_language(repos: Repos, settings: Settings) -> str:
    """The staff chat's language."""
    return _valid(await repos.staff_languages.get(STAFF_CHAT_KEY), settings.staff_default_language)


async def own_choice(repos: Repos, telegram_id: int) -> str | None:
    """What this staff member chose for their private chat, if anything."""
    chosen = await repos.staff_languages.get(member_key(telegram_id))
    return chosen if chosen in LANGUAGES else None


async def member_languages(repos: Repos, settings: Settings, telegram_ids: Iterable[int]) -> dict[int, str]:
    """Each staff member's language for their private chat (one SELECT for all)."""
    ids = list(telegram_ids)
    chosen = await repos.staff_languages.many(member_key(i) for i in ids)
    return {i: _valid(chosen[member_key(i)], settings.staff_default_language) for i in ids}


async def chat_language(repos: Repos, settings: Settings, chat_id: int) -> str:
    """The language of staff-facing texts in this chat: the staff chat's, or (a private chat's id is its
    person's Telegram id) that staff member's."""
    if is_staff_chat(chat_id, settings):
        return await staff_chat_language(repos, settings)
    return (await member_languages(repos, settings, [chat_id]))[chat_id]


async def choose_for_staff_chat(repos: Repos, lang: str, now: datetime) -> None:
    """/language by a staff member in the staff chat: for the whole group."""
    await repos.staff_languages.set(STAFF_CHAT_KEY, lang, now)


async def choose_for_member(repos: Repos, telegram_id: int, lang: str, now: datetime) -> None:
    """/language by a staff member in their private chat: for what the bot sends them there."""
    await repos.staff_languages.set(member_key(telegram_id), lang, now)
