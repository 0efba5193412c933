"""The one dialog protocol: steps, their buttons, stale presses, asking and re-asking.

A dialog is an aiogram ``StatesGroup`` (one state per question, its *step*)
plus a :class:`Dialog` that says how each question is asked, which buttons
each step has, and which steps are answered only by a button::

    class Referral(StatesGroup):
        name = State()
        phone = State()
        confirm = State()

    async def ask_name(message: Message, texts: Texts) -> None: ...

    dialog = Dialog(Referral, prefix="ref", errors="referral/errors",
                    ask={Referral.name: ask_name, Referral.phone: ask_phone, Referral.confirm: ask_confirm},
                    buttons={("yes", "confirm"): None}, buttons_only={Referral.confirm})

The composition function (``bot.app``) collects every dialog into one
:class:`Dialogs` and installs :class:`DialogMiddleware`; each handler then
takes ``turn: Turn`` — this update's side of the protocol:

* ``turn.begin(message)`` opens a dialog: buttons older than ``message`` are stale.
* ``turn.ask(message, Form.step)`` moves to a step and asks its question; an
  asker declares what it needs as typed parameters, injected by name like a
  handler's (``texts``, ``customer``, ``repos``, ``turn``...).
* ``turn.reject(message, error)`` answers bad input with its specific message
  (``<errors>/<code>``) and asks the same question again; ``turn.ask_again``
  asks it again after /help, /language, a command in the middle...
* ``turn.press(callback, callback_data)`` checks a button press: it belongs to
  the current step (the step travels in the callback data), to a message of
  this dialog, and fits the step's button table (callback data can be forged).
  A stale press is answered "This button has expired"; an accepted one is
  answered and the question's buttons are taken away, so a double press finds
  the next step and is stale. Telegram does not check callback data against
  the message's buttons (https://core.telegram.org/bots/api#callbackquery), and
  the client shows a progress bar until the press is answered
  (https://core.telegram.org/bots/api#answercallbackquery).
* ``turn.remember_question(sent)`` / ``turn.answered(message)``: a question
  answered by typing loses its buttons too.
* ``turn.interrupted`` / ``turn.wrong_input`` / ``turn.busy`` /
  ``turn.start_by_button`` are the mid-dialog guard: another command or a
  sticker where text is needed gets a clear answer and the question again; a
  button that would start a second dialog asks to finish the first.
* ``dialog.values(state)`` / ``dialog.save(state, values)``: the answers so far.
* ``turn.choice(callback, fits)``: a chain of button choices that carry
  everything chosen so far in the buttons themselves, with no dialog state
  (segment sending in the staff group); stale presses and taking buttons
  away work as in a dialog. :func:`set_buttons` changes a message's buttons.

A new dialog: a module in ``handlers/`` with its StatesGroup, askers, one
``Dialog`` and its handlers (``tests/test_dialog_protocol.py`` is one of three
questions), its texts in ``templates/en`` and ``templates/zh``, and two lines
in ``bot.app``: the dialog in ``build_dialogs`` and its router in
``build_routers``.

Nothing here is kept in the process: the step, the dialog's values and the
opening message's id live in dialog data (the FSM storage, in the database),
so a dialog goes on after ``:restart`` or on another replica.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware, Bot, F
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, TelegramObject

from bot.filters import When
from bot.middlewares import LANG_KEY
from bot.rules.customer_file import Invalid
from bot.texts import Texts

AskFn = Callable[..., Awaitable[Any]]
# A button's check: (its value, the dialog data) → whether it makes sense; None: any value.
Check = Callable[[str, dict[str, Any]], bool] | None

# Keys in dialog data that outlive a dialog.
KEPT_KEYS = (LANG_KEY,)
# Dialog data: the id of the message that opened the dialog (buttons up to it are stale),
# and of the question whose buttons a typed answer takes away.
SINCE = "since"
ASKED = "asked"

# Commands that work in the middle of a dialog; any other gets "finish or /cancel first".
# /help, /stop, /resume and /language ask the dialog's question again afterwards.
ALWAYS_ALLOWED = frozenset({"cancel", "help", "language"})
# Allowed in a dialog only to a registered customer (they change the customer file).
ALLOWED_TO_CUSTOMERS = frozenset({"stop", "resume"})


# A typed answer: text that is not a command (commands go to the guard).
TYPED = When(F.text & ~F.text.startswith("/"))


class StepButton(CallbackData, prefix="step"):
    """A dialog's button: what it does, the step it belongs to, and a value.

    Each dialog has its own subclass (its ``prefix``), made by :class:`Dialog`.
    """

    action: str
    step: str  # the step the button belongs to; a press at another step is stale
    value: str = ""


class _Asker:
    """An asker and the names of its parameters: it gets the chat's message and, by name, what it declares
    of the update's data (as aiogram gives a handler its parameters)."""

    def __init__(self, fn: AskFn) -> None:
        self.fn = fn
        parameters = list(inspect.signature(fn).parameters.values())[1:]  # the first is the message
        self.names = tuple(p.name for p in parameters
                           if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))

    async def __call__(self, message: Message, data: Mapping[str, Any]) -> None:
        await self.fn(message, **{name: data[name] for name in self.names if name in data})


class Dialog:
    """One conversation's questions and buttons (a definition: no per-chat state)."""

    def __init__(
        self,
        form: type[StatesGroup],
        *,
        prefix: str,
        ask: Mapping[State, AskFn],
        buttons: Mapping[tuple[str, str], Check] | None = None,
        buttons_only: Iterable[State] = (),
        errors: str = "errors",
        key: str | None = None,
    ) -> None:
        self.form = form
        self.name: str = form.__full_group_name__
        # The callback data of this dialog's buttons: ``<prefix>:<action>:<step>:<value>``.
        self.Button: type[StepButton] = types.new_class(
            f"{form.__name__}Button", (StepButton,), {"prefix": prefix})
        self._askers = {self._own(state): _Asker(fn) for state, fn in ask.items()}
        self._buttons = dict(buttons or {})
        self._buttons_only = {self._own(state) for state in buttons_only}
        self.errors = errors
        self.key = key or prefix  # dialog data: where this dialog keeps its answers

    def _own(self, state: State) -> str:
        name = state.state
        if name is None or self.step_of(name) is None:
            raise ValueError(f"{name} is not a step of {self.name}")
        return name

    def step_of(self, state_name: str | None) -> str | None:
        """The step of a state name of this dialog (``"OrderForm:note"`` → ``"note"``), else None."""
        if not state_name:
            return None
        group, _, step = state_name.partition(":")
        return step if group == self.name else None

    def button(self, action: str, step: str, value: object = "") -> str:
        """Callback data for a button of ``step``."""
        return self.Button(action=action, step=step, value=str(value)).pack()

    def fits(self, action: str, step: str, value: str, data: dict[str, Any]) -> bool:
        """Whether this button belongs to this step, with a value that makes sense there."""
        if (action, step) not in self._buttons:
            return False
        check = self._buttons[(action, step)]
        return check is None or bool(check(value, data))

    async def values(self, state: FSMContext) -> dict[str, Any]:
        """The answers this dialog has collected (a copy: change it, then :meth:`save` it)."""
        return dict((await state.get_data()).get(self.key) or {})

    async def save(self, state: FSMContext, values: dict[str, Any]) -> None:
        await state.update_data({self.key: values})

    def expects_buttons(self, state_name: str) -> bool:
        return state_name in self._buttons_only

    async def ask(self, state_name: str, message: Message, data: dict[str, Any]) -> bool:
        asker = self._askers.get(state_name)
        if asker is None:
            return False
        await asker(message, data)
        return True


class Dialogs:
    """Every dialog of the bot, by its states group: built once by the composition function."""

    def __init__(self, dialogs: Iterable[Dialog]) -> None:
        self._by_name: dict[str, Dialog] = {}
        for dialog in dialogs:
            if dialog.name in self._by_name:
                raise ValueError(f"two dialogs named {dialog.name}")
            self._by_name[dialog.name] = dialog

    def of(self, state_name: str | None) -> Dialog | None:
        if not state_name:
            return None
        return self._by_name.get(state_name.partition(":")[0])


@dataclass
class Press:
    """A button press that belongs to the current step."""

    callback: CallbackQuery
    message: Message  # the question the button is on
    step: str = ""
    action: str = ""
    value: str = ""

    async def accept(self, *, take_buttons: bool = True) -> None:
        """Answer the press and take the question's buttons away (they cannot be pressed twice)."""
        await self.callback.answer()
        if take_buttons:
            await set_buttons(self.message)


async def set_buttons(message: Message, markup: InlineKeyboardMarkup | None = None) -> None:
    """Replace a message's buttons (by default: none left); a second press finds them changed already."""
    try:
        await message.edit_reply_markup(reply_markup=markup)
    except TelegramBadRequest:
        pass  # no buttons left to take away (an old client pressed twice)


def _command_name(message: Message) -> str:
    return (message.text or "/").split()[0][1:].split("@")[0].lower()


def allowed_in_dialog(message: Message, registered: bool) -> bool:
    """Whether this command works in the middle of a dialog (the others must wait or /cancel it)."""
    name = _command_name(message)
    return name in ALWAYS_ALLOWED or (registered and name in ALLOWED_TO_CUSTOMERS)


class Turn:
    """This update's side of the dialog protocol (handler parameter ``turn``)."""

    def __init__(self, dialogs: Dialogs, data: dict[str, Any]) -> None:
        self._dialogs = dialogs
        self._data = data

    @property
    def state(self) -> FSMContext:
        return self._data["state"]

    @property
    def texts(self) -> Texts:
        return self._data["texts"]

    def _data_with(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """What an asker may ask for, some of it replaced (the texts of a language just chosen)."""
        if not overrides:
            return self._data
        data = {**self._data, **overrides}
        data["turn"] = Turn(self._dialogs, data)
        return data

    async def step(self, dialog: Dialog) -> str | None:
        """The current step of ``dialog``; None when another dialog, or none, is under way."""
        return dialog.step_of(await self.state.get_state())

    # ----- opening, asking, ending ---------------------------------------------------------

    async def begin(self, message: Message, **values: Any) -> None:
        """Open a dialog from ``message``: buttons on it and older ones are stale from now on."""
        await self.state.update_data({SINCE: message.message_id, **values})

    async def ask(self, message: Message, step: State, **overrides: Any) -> None:
        """Move to ``step`` and ask its question."""
        name = step.state
        dialog = self._dialogs.of(name)
        if dialog is None or name is None:
            raise LookupError(f"{name} belongs to no dialog given to Dialogs")
        await self.state.set_state(step)
        await dialog.ask(name, message, self._data_with(overrides))

    async def ask_again(self, message: Message, **overrides: Any) -> bool:
        """Ask the current step's question again; False when no dialog is under way."""
        name = await self.state.get_state()
        dialog = self._dialogs.of(name)
        if dialog is None or name is None:
            return False
        return await dialog.ask(name, message, self._data_with(overrides))

    async def reject(self, message: Message, error: Invalid, area: str | None = None) -> None:
        """Bad input: say what is wrong (``<area>/<code>``, by default the dialog's errors), then ask again."""
        if area is None:
            dialog = self._dialogs.of(await self.state.get_state())
            area = dialog.errors if dialog is not None else "errors"
        await self.say_and_ask_again(message, self.texts(f"{area}/{error.code}", **error.params))

    async def say_and_ask_again(self, message: Message, text: str) -> None:
        await message.answer(text)
        await self.ask_again(message)

    async def end(self) -> None:
        """Leave the dialog; keep only what outlives it (the chosen language)."""
        await end_dialog(self.state)

    # ----- buttons --------------------------------------------------------------------------

    async def press(self, callback: CallbackQuery, button: StepButton, *, accept: bool = True) -> Press | None:
        """The press of a button of the current step, or None when it is stale (answered so).

        ``accept=False`` leaves answering to the caller (``press.accept()``, or
        ``turn.expired(callback)`` after a check of its own).
        """
        message = callback.message
        name = await self.state.get_state()
        dialog = self._dialogs.of(name)
        step = dialog.step_of(name) if dialog is not None else None
        data = await self.state.get_data()
        if (
            dialog is None
            or step is None
            or not isinstance(button, dialog.Button)
            or step != button.step
            or not isinstance(message, Message)
            or message.message_id <= int(data.get(SINCE) or 0)
            or not dialog.fits(button.action, step, button.value, data)
        ):
            await self.expired(callback)
            return None
        press = Press(callback, message, step, button.action, button.value)
        if accept:
            await press.accept()
        return press

    async def expired(self, callback: CallbackQuery) -> None:
        await callback.answer(self.texts("common/button_expired.txt"))

    async def choice(self, callback: CallbackQuery, fits: bool, *, stale: str = "common/button_expired.txt",
                     alert: bool = False, accept: bool = True) -> Press | None:
        """A press in a chain of choices that travel in the buttons themselves (no dialog state).

        For tools in the staff group (a segment's care message): a dialog state
        there would take the person's chatter in the group as answers. ``fits``
        is the caller's check of the callback data (it can be forged); a press
        that does not fit is answered ``stale``; an accepted one is answered
        and its message loses its buttons, so each choice is made once.
        """
        message = callback.message
        if not fits or not isinstance(message, Message):
            if alert:
                await callback.answer(self.texts(stale), show_alert=True)
            else:
                await callback.answer(self.texts(stale))
            return None
        press = Press(callback, message)
        if accept:
            await press.accept()
        return press

    async def remember_question(self, sent: Message) -> None:
        """``sent`` (sent with ``at_once``) has buttons that a typed answer should take away."""
        await self.state.update_data({ASKED: sent.message_id})

    async def answered(self, message: Message, markup: InlineKeyboardMarkup | None = None) -> None:
        """A typed answer was accepted: the remembered question's buttons go (or become ``markup``)."""
        data = await self.state.get_data()
        asked = data.get(ASKED)
        if asked is None:
            return
        await self.state.update_data({ASKED: None})
        bot: Bot = self._data["bot"]
        try:
            await bot.edit_message_reply_markup(chat_id=message.chat.id, message_id=int(asked), reply_markup=markup)
        except TelegramBadRequest:
            pass

    # ----- the mid-dialog guard -------------------------------------------------------------

    async def busy(self, callback: CallbackQuery, unless: Dialog | None = None) -> bool:
        """A button that would open a dialog while one (other than ``unless``) is under way: "finish it first"."""
        name = await self.state.get_state()
        if name is None or (unless is not None and unless.step_of(name) is not None):
            return False
        await callback.answer(self.texts("common/finish_first.txt"), show_alert=True)
        return True

    async def start_by_button(self, callback: CallbackQuery) -> Message | None:
        """A button that opens a dialog: its message, answered; None when stale or another dialog is under way."""
        if not isinstance(callback.message, Message):
            await self.expired(callback)
            return None
        if await self.busy(callback):
            return None
        await callback.answer()
        return callback.message

    async def interrupted(self, message: Message) -> None:
        """Something else was asked for in the middle of a dialog: finish it or /cancel first."""
        await self.say_and_ask_again(message, self.texts("common/finish_first"))

    async def wrong_input(self, message: Message) -> None:
        """Nothing in the dialog accepted this message (a sticker where text is needed...)."""
        name = await self.state.get_state()
        dialog = self._dialogs.of(name)
        buttons = dialog is not None and name is not None and dialog.expects_buttons(name)
        # Text (or anything, at a step answered by its buttons) was not understood; else text was needed.
        template = "common/not_understood" if message.text or buttons else "common/expected_text"
        await self.say_and_ask_again(message, self.texts(template))


async def asked_question(state: FSMContext) -> int | None:
    """The message id :meth:`Turn.remember_question` kept (for a filter: filters run before the turn exists)."""
    asked = (await state.get_data()).get(ASKED)
    return int(asked) if asked is not None else None


class DialogMiddleware(BaseMiddleware):
    """Give every message and button handler its :class:`Turn` (parameter ``turn``)."""

    def __init__(self, dialogs: Dialogs) -> None:
        self.dialogs = dialogs

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        data["turn"] = Turn(self.dialogs, data)
        return await handler(event, data)


async def end_dialog(state: FSMContext) -> None:
    """Leave the dialog; keep only what outlives it (the chosen language)."""
    data = await state.get_data()
    kept = {key: data[key] for key in KEPT_KEYS if key in data}
    await state.set_state(None)
    await state.set_data(kept)
