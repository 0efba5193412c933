"""A process-wide count of committed transactions that wrote something.

Under time travel (``jobs.runner.advance``) every job runs at every step,
and most steps change nothing; a job can compare this count with the one it
saw last time to skip re-reading data that cannot have changed. (Only writes
made by this process are counted: the live bot, where other processes may
write, must not rely on it alone.)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

_KEY = "caredesk_wrote"
COMMITS = [0]


def commits() -> int:
    return COMMITS[0]


def wrote(session: Any) -> None:
    """Count the session's next commit as a write: for SQL sent past the ORM (``exec_driver_sql``)."""
    session.info[_KEY] = True


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _context: Any) -> None:
    session.info[_KEY] = True


@event.listens_for(Session, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if not state.is_select:
        state.session.info[_KEY] = True


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.info.pop(_KEY, False):
        COMMITS[0] += 1


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_KEY, None)
