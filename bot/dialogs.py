"""What every dialog shares: asking the current question again, and ending.

Each dialog registers, per state, the function that asks its question
(``@asks(Form.step)``). The common fallback uses it to answer wrong input —
a sticker where text is needed, a command in the middle — with a clear
message and the same question again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import Message

from bot.middlewares import LANG_KEY

AskFn = Callable[[Message, dict[str, Any]], Awaitable[None]]
_ASKERS: dict[str, AskFn] = {}
# States answered only by pressing a button (wrong input there: "use the buttons").
_BUTTONS_ONLY: set[str] = set()

# Keys in dialog data that outlive a dialog.
KEPT_KEYS = (LANG_KEY,)


def asks(*states: State, buttons_only: bool = False) -> Callable[[AskFn], AskFn]:
    """Register the function that asks the question of these states.

    ``buttons_only``: the question is answered with its buttons, so any
    message there is told to use them (instead of "I need a text message").
    """

    def register(fn: AskFn) -> AskFn:
        for state in states:
            _ASKERS[state.state] = fn  # type: ignore[index]
            if buttons_only:
                _BUTTONS_ONLY.add(state.state)  # type: ignore[arg-type]
        return fn

    return register


def expects_buttons(state_name: str | None) -> bool:
    """True when the question of this state is answered by a button press."""
    return state_name in _BUTTONS_ONLY


async def ask_again(message: Message, data: dict[str, Any]) -> bool:
    """Ask the question of the current state again; False when not in a dialog."""
    state: FSMContext = data["state"]
    current = await state.get_state()
    if current is None:
        return False
    ask = _ASKERS.get(current)
    if ask is None:
        return False
    await ask(message, data)
    return True


async def end_dialog(state: FSMContext) -> None:
    """Leave the dialog; keep only what outlives it (the chosen language)."""
    data = await state.get_data()
    kept = {key: data[key] for key in KEPT_KEYS if key in data}
    await state.set_state(None)
    await state.set_data(kept)
