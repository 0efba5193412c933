"""The customer file dialog: registration on /start, and editing one field.

One dialog serves three modes, kept in dialog data as ``mode``:
``register`` walks every step in order; ``review`` edits one field from the
registration summary and returns to it; ``profile`` edits one field of an
existing customer file (from /profile) and saves it at once.

Steps, buttons, stale presses and re-asking follow the one dialog protocol
(:mod:`bot.dialogs`): a button on a message older than the one that opened the
dialog belongs to an old dialog and is refused, even when its step matches.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiogram import F, Router
from aiogram.filters import CommandStart, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    User,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callback_ids import RowId
from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import TYPED, Dialog, StepButton, Turn
from bot.filters import When, private_router
from bot.menu import menu_keyboard
from bot.roles import Role
from bot.rules import customer_file as rules
from bot.texts import Texts
from handlers.common import help_text
from storage.models import Customer
from storage.repositories import Repos


def build_router() -> Router:
    """A new router with this module's handlers, tried in this order (bot.app.build_routers places it)."""
    router = private_router("registration")
    router.message.register(start, CommandStart())
    router.message.register(process_name, StateFilter(RegistrationForm.name), TYPED)
    router.message.register(process_contact, StateFilter(RegistrationForm.phone), When(F.contact))
    router.message.register(process_phone, StateFilter(RegistrationForm.phone), TYPED)
    router.message.register(process_birthday, StateFilter(RegistrationForm.birthday), TYPED)
    router.message.register(process_address, StateFilter(RegistrationForm.address), TYPED)
    router.message.register(process_household, StateFilter(RegistrationForm.household), TYPED)
    router.callback_query.register(process_button, dialog.Button.filter())
    return router


class RegistrationForm(StatesGroup):
    name = State()
    phone = State()
    birthday = State()
    address = State()
    household = State()
    consent = State()
    confirm = State()


STEPS = ("name", "phone", "birthday", "address", "household", "consent")
FIELD_OF_STEP = {
    "name": "name", "phone": "phone", "birthday": "birthday", "address": "address",
    "household": "household_size", "consent": "care_consent",
}
STATE_OF_STEP = {step: getattr(RegistrationForm, step) for step in (*STEPS, "confirm")}
OPTIONAL_STEPS = {"birthday", "address", "household"}
HOUSEHOLD_QUICK = ("1", "2", "3", "4", "5", "6")
EDIT_MODES = {"review", "profile"}


# ----- showing a customer file (registration summary and /profile) ---------

def file_fields(values: dict[str, Any]) -> dict[str, Any]:
    """The values as templates show them (dates as date objects)."""
    shown = dict(values)
    birthday = shown.get("birthday")
    if isinstance(birthday, str):
        shown["birthday"] = date.fromisoformat(birthday)
    return shown


def customer_values(customer: Customer) -> dict[str, Any]:
    return {field: getattr(customer, field) for field in FIELD_OF_STEP.values()}


class ProfileCallback(CallbackData, prefix="prof"):
    action: str  # edit | forget_yes | forget_no | lang
    value: str = ""
    # The customer file the button was made for: after /forget and a new
    # registration, the old file's buttons are stale.
    cid: RowId = 0


async def show_profile(message: Message, texts: Texts, customer: Customer | None) -> None:
    if customer is None:
        await message.answer(texts("common/register_first"))
        return
    builder = InlineKeyboardBuilder()
    for step in STEPS:
        builder.button(text=texts.button(f"field_{step}"),
                       callback_data=ProfileCallback(action="edit", value=step, cid=customer.id))
    builder.adjust(2)
    await message.answer(
        texts("profile/show", file=file_fields(customer_values(customer)), customer=customer),
        reply_markup=builder.as_markup(),
    )


# ----- asking each question -------------------------------------------------

async def _editing(state: FSMContext, customer: Customer | None, step: str) -> tuple[bool, Any]:
    """(whether one field is being edited, its current value or None)."""
    dialog_data = await state.get_data()
    mode = dialog_data.get("mode", "register")
    field = FIELD_OF_STEP[step]
    if mode == "review":
        return True, file_fields(dialog_data.get("reg", {})).get(field)
    if mode == "profile":
        return True, getattr(customer, field) if customer is not None else None
    return False, None


def _question(texts: Texts, step: str, editing: bool, current: Any, **context: Any) -> str:
    """The question of a step; when editing, with the value it has now."""
    text = texts(f"registration/ask_{step}", **context)
    if editing and current is not None:
        text += "\n\n" + texts("registration/current", step=step, value=current)
    return text


def _optional_buttons(builder: InlineKeyboardBuilder, texts: Texts, step: str, editing: bool, current: Any) -> None:
    """Skip while registering; Remove (when set) and Keep while editing."""
    if not editing:
        builder.button(text=texts.button("skip"), callback_data=dialog.button("skip", step))
        return
    if current is not None:
        builder.button(text=texts.button("edit_remove"), callback_data=dialog.button("skip", step))
    builder.button(text=texts.button("edit_keep"), callback_data=dialog.button("keep", step))


async def ask_name(message: Message, texts: Texts, state: FSMContext, customer: Customer | None,
                   event_from_user: User | None = None) -> None:
    editing, current = await _editing(state, customer, "name")
    try:
        suggested = rules.parse_name((event_from_user.first_name if event_from_user else "") or "")
    except rules.Invalid:
        suggested = None
    if suggested == current:
        suggested = None  # "use Mei" when the name is Mei already changes nothing
    builder = InlineKeyboardBuilder()
    if suggested:
        builder.button(text=texts.button("use_name", name=suggested), callback_data=dialog.button("tgname", "name"))
    if editing:
        builder.button(text=texts.button("edit_keep"), callback_data=dialog.button("keep", "name"))
    builder.adjust(1)
    markup = builder.as_markup() if suggested or editing else None
    await message.answer(_question(texts, "name", editing, current, suggested=suggested), reply_markup=markup)


async def ask_phone(message: Message, texts: Texts, state: FSMContext, customer: Customer | None) -> None:
    editing, current = await _editing(state, customer, "phone")
    rows = [[KeyboardButton(text=texts.button("share_phone"), request_contact=True)]]
    if editing:
        # A reply keyboard cannot carry inline buttons: "keep" comes back as text.
        # https://core.telegram.org/bots/api#replykeyboardmarkup
        rows.append([KeyboardButton(text=texts.button("edit_keep"))])
    keyboard = ReplyKeyboardMarkup(keyboard=rows, resize_keyboard=True, one_time_keyboard=True)
    await message.answer(_question(texts, "phone", editing, current), reply_markup=keyboard)


async def ask_birthday(message: Message, texts: Texts, state: FSMContext, customer: Customer | None) -> None:
    editing, current = await _editing(state, customer, "birthday")
    builder = InlineKeyboardBuilder()
    _optional_buttons(builder, texts, "birthday", editing, current)
    await message.answer(_question(texts, "birthday", editing, current), reply_markup=builder.as_markup())


async def ask_address(message: Message, texts: Texts, state: FSMContext, customer: Customer | None) -> None:
    editing, current = await _editing(state, customer, "address")
    builder = InlineKeyboardBuilder()
    _optional_buttons(builder, texts, "address", editing, current)
    await message.answer(_question(texts, "address", editing, current), reply_markup=builder.as_markup())


async def ask_household(message: Message, texts: Texts, state: FSMContext, customer: Customer | None) -> None:
    editing, current = await _editing(state, customer, "household")
    builder = InlineKeyboardBuilder()
    for value in HOUSEHOLD_QUICK:
        builder.button(text=value, callback_data=dialog.button("household", "household", value))
    _optional_buttons(builder, texts, "household", editing, current)
    builder.adjust(len(HOUSEHOLD_QUICK), 2)
    text = _question(texts, "household", editing, current, low=rules.HOUSEHOLD_MIN, high=rules.HOUSEHOLD_MAX)
    await message.answer(text, reply_markup=builder.as_markup())


async def ask_consent(message: Message, texts: Texts, state: FSMContext, customer: Customer | None) -> None:
    editing, current = await _editing(state, customer, "consent")
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("yes"), callback_data=dialog.button("consent", "consent", "yes"))
    builder.button(text=texts.button("no"), callback_data=dialog.button("consent", "consent", "no"))
    await message.answer(_question(texts, "consent", editing, current), reply_markup=builder.as_markup())


async def show_summary(message: Message, texts: Texts, state: FSMContext) -> None:
    values = (await state.get_data()).get("reg", {})
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("confirm"), callback_data=dialog.button("confirm", "confirm"))
    builder.button(text=texts.button("edit"), callback_data=dialog.button("edit", "confirm"))
    await message.answer(
        texts("registration/summary", file=file_fields(values)), reply_markup=builder.as_markup()
    )


def _editing_mode(_value: str, data: dict[str, Any]) -> bool:
    return data.get("mode", "register") in EDIT_MODES


def _household_value(value: str, _data: dict[str, Any]) -> bool:
    try:
        rules.parse_household(value)
    except rules.Invalid:
        return False
    return True


dialog = Dialog(
    RegistrationForm,
    prefix="reg",
    ask={
        RegistrationForm.name: ask_name, RegistrationForm.phone: ask_phone,
        RegistrationForm.birthday: ask_birthday, RegistrationForm.address: ask_address,
        RegistrationForm.household: ask_household, RegistrationForm.consent: ask_consent,
        RegistrationForm.confirm: show_summary,
    },
    # Which buttons belong to which step (callback data can be forged: anything else has expired).
    buttons={
        ("tgname", "name"): None,
        **{("skip", step): None for step in OPTIONAL_STEPS},
        **{("keep", step): _editing_mode for step in STEPS},  # "keep" belongs to editing a field
        ("keep", "confirm"): None,  # back from the list of fields
        ("household", "household"): _household_value,
        ("consent", "consent"): lambda value, _data: value in ("yes", "no"),
        ("confirm", "confirm"): None,
        ("edit", "confirm"): None,
        ("field", "confirm"): lambda value, _data: value in STEPS,
    },
    buttons_only={RegistrationForm.consent, RegistrationForm.confirm},
)


# ----- starting ---------------------------------------------------------------

async def start(message: Message, texts: Texts, turn: Turn, customer: Customer | None, role: Role) -> None:
    """A new customer registers; a registered one sees the menu; staff see their commands."""
    if customer is not None:
        await message.answer(texts("menu/main", name=customer.name), reply_markup=menu_keyboard(texts))
        return
    if role >= Role.STAFF:
        await message.answer(help_text(texts, role))
        return
    await turn.begin(message, reg={}, mode="register")
    await message.answer(texts("registration/welcome"))
    await turn.ask(message, RegistrationForm.name)


async def start_editing(message: Message, turn: Turn, step: str, mode: str) -> None:
    """Edit one field: from the registration summary (review) or /profile.

    From /profile a new dialog opens: buttons older than ``message`` are stale.
    """
    if mode == "profile":
        await turn.begin(message, mode=mode)
    else:
        await turn.state.update_data(mode=mode)
    await turn.ask(message, STATE_OF_STEP[step])


# ----- accepting an answer ---------------------------------------------------

async def accept(message: Message, turn: Turn, step: str, value: Any, *, texts: Texts, customer: Customer | None,
                 repos: Repos, clock: Clock) -> None:
    """Store one answer and go on: next step, back to summary, or save to the file."""
    state = turn.state
    dialog_data = await state.get_data()
    mode = dialog_data.get("mode", "register")
    field = FIELD_OF_STEP[step]
    if mode == "profile":
        if customer is None:
            await turn.end()
            await message.answer(texts("common/register_first"), reply_markup=ReplyKeyboardRemove())
            return
        await repos.customers.update_field(customer, field, value, clock.now())
        if field == "care_consent":
            if value:
                await repos.customers.mark_reachable(customer)  # as /resume does
            else:
                await repos.outbox.skip_pending_care(customer.id, "consent withdrawn")
        await turn.end()
        await message.answer(texts("profile/saved"), reply_markup=ReplyKeyboardRemove() if step == "phone" else None)
        await show_profile(message, texts, customer)
        return
    reg = dict(dialog_data.get("reg", {}))
    reg[field] = value.isoformat() if isinstance(value, date) else value
    await state.update_data(reg=reg)
    if mode == "review":
        await state.update_data(mode="register")
        await turn.ask(message, RegistrationForm.confirm)
        return
    next_step = STEPS[STEPS.index(step) + 1] if step != STEPS[-1] else "confirm"
    await turn.ask(message, STATE_OF_STEP[next_step])


async def keep(message: Message, turn: Turn, step: str, texts: Texts, customer: Customer | None) -> None:
    """Leave the field as it is: back to the summary, or to the profile."""
    mode = (await turn.state.get_data()).get("mode", "register")
    if step == "phone":
        # Take the share-contact keyboard away.
        await message.answer(texts("registration/unchanged"), reply_markup=ReplyKeyboardRemove())
    if mode == "profile":
        await turn.end()
        await show_profile(message, texts, customer)
        return
    await turn.state.update_data(mode="register")
    await turn.ask(message, RegistrationForm.confirm)


async def process_name(message: Message, turn: Turn, texts: Texts, customer: Customer | None, repos: Repos,
                       clock: Clock) -> None:
    try:
        value = rules.parse_name(message.text or "")
    except rules.Invalid as error:
        await turn.reject(message, error)
        return
    await accept(message, turn, "name", value, texts=texts, customer=customer, repos=repos, clock=clock)


async def process_contact(message: Message, turn: Turn, texts: Texts, customer: Customer | None, repos: Repos,
                          clock: Clock, settings: Settings) -> None:
    contact = message.contact
    assert contact is not None
    # The share button always sends the sender's own contact; a contact card of
    # someone else (or of no Telegram user) is not theirs to give.
    # https://core.telegram.org/bots/api#keyboardbutton (request_contact), https://core.telegram.org/bots/api#contact
    if message.from_user is None or contact.user_id != message.from_user.id:
        await turn.reject(message, rules.Invalid("phone_not_own"))
        return
    try:
        value = rules.contact_phone(contact.phone_number, settings.default_region)
    except rules.Invalid as error:
        await turn.reject(message, error)
        return
    await _phone_accepted(message, turn, value, texts=texts, customer=customer, repos=repos, clock=clock)


async def process_phone(message: Message, turn: Turn, texts: Texts, customer: Customer | None, repos: Repos,
                        clock: Clock, settings: Settings) -> None:
    text = (message.text or "").strip()
    mode = (await turn.state.get_data()).get("mode", "register")
    if mode in EDIT_MODES and text == texts.button("edit_keep"):
        await keep(message, turn, "phone", texts, customer)
        return
    try:
        value = rules.parse_phone(text, settings.default_region)
    except rules.Invalid as error:
        await turn.reject(message, error)
        return
    await _phone_accepted(message, turn, value, texts=texts, customer=customer, repos=repos, clock=clock)


async def _phone_accepted(message: Message, turn: Turn, value: str, *, texts: Texts, customer: Customer | None,
                          repos: Repos, clock: Clock) -> None:
    mode = (await turn.state.get_data()).get("mode")
    if mode != "profile":
        # Take the share-contact keyboard away before the next question.
        await message.answer(texts("registration/phone_saved", phone=value), reply_markup=ReplyKeyboardRemove())
    await accept(message, turn, "phone", value, texts=texts, customer=customer, repos=repos, clock=clock)


async def process_birthday(message: Message, turn: Turn, texts: Texts, customer: Customer | None, repos: Repos,
                           clock: Clock, settings: Settings) -> None:
    today = clock.now().astimezone(settings.tz).date()
    try:
        value = rules.parse_birthday(message.text or "", today)
    except rules.Invalid as error:
        await turn.reject(message, error)
        return
    await accept(message, turn, "birthday", value, texts=texts, customer=customer, repos=repos, clock=clock)


async def process_address(message: Message, turn: Turn, texts: Texts, customer: Customer | None, repos: Repos,
                          clock: Clock) -> None:
    try:
        value = rules.parse_address(message.text or "")
    except rules.Invalid as error:
        await turn.reject(message, error)
        return
    await accept(message, turn, "address", value, texts=texts, customer=customer, repos=repos, clock=clock)


async def process_household(message: Message, turn: Turn, texts: Texts, customer: Customer | None, repos: Repos,
                            clock: Clock) -> None:
    try:
        value = rules.parse_household(message.text or "")
    except rules.Invalid as error:
        await turn.reject(message, error)
        return
    await accept(message, turn, "household", value, texts=texts, customer=customer, repos=repos, clock=clock)


# ----- buttons ---------------------------------------------------------------

async def process_button(callback: CallbackQuery, callback_data: StepButton, turn: Turn, texts: Texts,
                         customer: Customer | None, repos: Repos, clock: Clock) -> None:
    press = await turn.press(callback, callback_data)
    if press is None:
        return
    message, step, action = press.message, press.step, press.action
    answer = {"texts": texts, "customer": customer, "repos": repos, "clock": clock}
    if action == "tgname":
        try:
            value = rules.parse_name(callback.from_user.first_name or "")
        except rules.Invalid as error:
            await turn.reject(message, error)
            return
        await accept(message, turn, "name", value, **answer)
    elif action == "skip":
        await accept(message, turn, step, None, **answer)
    elif action == "keep":
        await keep(message, turn, step, texts, customer)
    elif action == "household":
        await accept(message, turn, "household", rules.parse_household(press.value), **answer)
    elif action == "consent":
        await accept(message, turn, "consent", press.value == "yes", **answer)
    elif action == "confirm":
        await _confirm(callback, message, turn, texts, repos, clock)
    elif action == "edit":
        builder = InlineKeyboardBuilder()
        for field_step in STEPS:
            builder.button(text=texts.button(f"field_{field_step}"),
                           callback_data=dialog.button("field", "confirm", field_step))
        builder.button(text=texts.button("edit_back"), callback_data=dialog.button("keep", "confirm"))
        builder.adjust(2)
        await message.answer(texts("registration/which_field"), reply_markup=builder.as_markup())
    elif action == "field":
        await start_editing(message, turn, press.value, "review")


async def _confirm(callback: CallbackQuery, message: Message, turn: Turn, texts: Texts, repos: Repos,
                   clock: Clock) -> None:
    reg = dict((await turn.state.get_data()).get("reg", {}))
    if not reg.get("name") or not reg.get("phone"):
        # Data lost or forged: walk the missing steps again.
        await turn.ask(message, RegistrationForm.name if not reg.get("name") else RegistrationForm.phone)
        return
    if isinstance(reg.get("birthday"), str):
        reg["birthday"] = date.fromisoformat(reg["birthday"])
    reg["care_consent"] = bool(reg.get("care_consent"))
    customer = await repos.customers.register(callback.from_user.id, reg, texts.lang, clock.now())
    await turn.end()
    await message.answer(texts("registration/done", name=customer.name), reply_markup=menu_keyboard(texts))
