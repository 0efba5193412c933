"""The customer file dialog: registration on /start, and editing one field.

One dialog serves three modes, kept in dialog data as ``mode``:
``register`` walks every step in order; ``review`` edits one field from the
registration summary and returns to it; ``profile`` edits one field of an
existing customer file (from /profile) and saves it at once.

Dialog data also keeps ``since``: the id of the message that opened the
dialog. A button on an older message belongs to an old dialog and is refused,
even when its step matches the current one.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
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

from bot.filters import When
from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import ask_again, asks, end_dialog
from bot.menu import menu_keyboard
from bot.roles import Role
from bot.rules import customer_file as rules
from bot.texts import Texts
from handlers.common import help_text
from storage.models import Customer
from storage.repositories import Repos

router = Router(name="registration")
router.message.filter(When(F.chat.type == "private"))
router.callback_query.filter(When(F.message.chat.type == "private"))


class RegistrationForm(StatesGroup):
    name = State()
    phone = State()
    birthday = State()
    address = State()
    household = State()
    consent = State()
    confirm = State()


class RegCallback(CallbackData, prefix="reg"):
    # tgname | skip | keep | household | consent | confirm | edit | field
    action: str
    step: str  # the state the button belongs to; a press in another state is stale
    value: str = ""


STEPS = ("name", "phone", "birthday", "address", "household", "consent")
FIELD_OF_STEP = {
    "name": "name", "phone": "phone", "birthday": "birthday", "address": "address",
    "household": "household_size", "consent": "care_consent",
}
STATE_OF_STEP = {step: getattr(RegistrationForm, step) for step in (*STEPS, "confirm")}
OPTIONAL_STEPS = {"birthday", "address", "household"}
HOUSEHOLD_QUICK = ("1", "2", "3", "4", "5", "6")
EDIT_MODES = {"review", "profile"}


def _step_of(state_name: str | None) -> str | None:
    if not state_name or not state_name.startswith("RegistrationForm:"):
        return None
    return state_name.split(":", 1)[1]


def _cb(action: str, step: str, value: str = "") -> str:
    return RegCallback(action=action, step=step, value=value).pack()


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


# ----- asking each question -------------------------------------------------

async def _editing(data: dict[str, Any], step: str) -> tuple[bool, Any]:
    """(whether one field is being edited, its current value or None)."""
    state: FSMContext = data["state"]
    dialog = await state.get_data()
    mode = dialog.get("mode", "register")
    field = FIELD_OF_STEP[step]
    if mode == "review":
        return True, file_fields(dialog.get("reg", {})).get(field)
    if mode == "profile":
        customer: Customer | None = data.get("customer")
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
        builder.button(text=texts.button("skip"), callback_data=_cb("skip", step))
        return
    if current is not None:
        builder.button(text=texts.button("edit_remove"), callback_data=_cb("skip", step))
    builder.button(text=texts.button("edit_keep"), callback_data=_cb("keep", step))


@asks(RegistrationForm.name)
async def ask_name(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    user: User | None = data.get("event_from_user")
    editing, current = await _editing(data, "name")
    try:
        suggested = rules.parse_name((user.first_name if user else "") or "")
    except rules.Invalid:
        suggested = None
    if suggested == current:
        suggested = None  # "use Mei" when the name is Mei already changes nothing
    builder = InlineKeyboardBuilder()
    if suggested:
        builder.button(text=texts.button("use_name", name=suggested), callback_data=_cb("tgname", "name"))
    if editing:
        builder.button(text=texts.button("edit_keep"), callback_data=_cb("keep", "name"))
    builder.adjust(1)
    markup = builder.as_markup() if suggested or editing else None
    await message.answer(_question(texts, "name", editing, current, suggested=suggested), reply_markup=markup)


@asks(RegistrationForm.phone)
async def ask_phone(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    editing, current = await _editing(data, "phone")
    rows = [[KeyboardButton(text=texts.button("share_phone"), request_contact=True)]]
    if editing:
        # A reply keyboard cannot carry inline buttons: "keep" comes back as text.
        rows.append([KeyboardButton(text=texts.button("edit_keep"))])
    keyboard = ReplyKeyboardMarkup(keyboard=rows, resize_keyboard=True, one_time_keyboard=True)
    await message.answer(_question(texts, "phone", editing, current), reply_markup=keyboard)


@asks(RegistrationForm.birthday)
async def ask_birthday(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    editing, current = await _editing(data, "birthday")
    builder = InlineKeyboardBuilder()
    _optional_buttons(builder, texts, "birthday", editing, current)
    await message.answer(_question(texts, "birthday", editing, current), reply_markup=builder.as_markup())


@asks(RegistrationForm.address)
async def ask_address(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    editing, current = await _editing(data, "address")
    builder = InlineKeyboardBuilder()
    _optional_buttons(builder, texts, "address", editing, current)
    await message.answer(_question(texts, "address", editing, current), reply_markup=builder.as_markup())


@asks(RegistrationForm.household)
async def ask_household(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    editing, current = await _editing(data, "household")
    builder = InlineKeyboardBuilder()
    for value in HOUSEHOLD_QUICK:
        builder.button(text=value, callback_data=_cb("household", "household", value))
    _optional_buttons(builder, texts, "household", editing, current)
    builder.adjust(len(HOUSEHOLD_QUICK), 2)
    text = _question(texts, "household", editing, current, low=rules.HOUSEHOLD_MIN, high=rules.HOUSEHOLD_MAX)
    await message.answer(text, reply_markup=builder.as_markup())


@asks(RegistrationForm.consent, buttons_only=True)
async def ask_consent(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    editing, current = await _editing(data, "consent")
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("yes"), callback_data=_cb("consent", "consent", "yes"))
    builder.button(text=texts.button("no"), callback_data=_cb("consent", "consent", "no"))
    await message.answer(_question(texts, "consent", editing, current), reply_markup=builder.as_markup())


@asks(RegistrationForm.confirm, buttons_only=True)
async def show_summary(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    values = (await state.get_data()).get("reg", {})
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("confirm"), callback_data=_cb("confirm", "confirm"))
    builder.button(text=texts.button("edit"), callback_data=_cb("edit", "confirm"))
    await message.answer(
        texts("registration/summary", file=file_fields(values)), reply_markup=builder.as_markup()
    )


async def ask_step(message: Message, data: dict[str, Any], step: str) -> None:
    state: FSMContext = data["state"]
    await state.set_state(STATE_OF_STEP[step])
    await {
        "name": ask_name, "phone": ask_phone, "birthday": ask_birthday, "address": ask_address,
        "household": ask_household, "consent": ask_consent, "confirm": show_summary,
    }[step](message, data)


# ----- starting ---------------------------------------------------------------

@router.message(CommandStart())
async def start(message: Message, **data: Any) -> None:
    """A new customer registers; a registered one sees the menu; staff see their commands."""
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    customer: Customer | None = data.get("customer")
    role: Role = data["role"]
    if customer is not None:
        await message.answer(texts("menu/main", name=customer.name), reply_markup=menu_keyboard(texts))
        return
    if role >= Role.STAFF:
        await message.answer(help_text(texts, role))
        return
    await state.update_data(reg={}, mode="register", since=message.message_id)
    await message.answer(texts("registration/welcome"))
    await ask_step(message, data, "name")


async def start_editing(message: Message, data: dict[str, Any], step: str, mode: str) -> None:
    """Edit one field: from the registration summary (review) or /profile.

    From /profile a new dialog opens: buttons older than ``message`` are stale.
    """
    state: FSMContext = data["state"]
    if mode == "profile":
        await state.update_data(mode=mode, since=message.message_id)
    else:
        await state.update_data(mode=mode)
    await ask_step(message, data, step)


# ----- accepting an answer ---------------------------------------------------

async def accept(message: Message, data: dict[str, Any], step: str, value: Any) -> None:
    """Store one answer and go on: next step, back to summary, or save to the file."""
    state: FSMContext = data["state"]
    texts: Texts = data["texts"]
    dialog = await state.get_data()
    mode = dialog.get("mode", "register")
    field = FIELD_OF_STEP[step]
    if mode == "profile":
        customer: Customer | None = data.get("customer")
        repos: Repos = data["repos"]
        clock: Clock = data["clock"]
        if customer is None:
            await end_dialog(state)
            await message.answer(texts("common/register_first"), reply_markup=ReplyKeyboardRemove())
            return
        await repos.customers.update_field(customer, field, value, clock.now())
        if field == "care_consent":
            if value:
                await repos.customers.mark_reachable(customer)  # as /resume does
            else:
                await repos.outbox.skip_pending_care(customer.id, "consent withdrawn")
        await end_dialog(state)
        await message.answer(texts("profile/saved"), reply_markup=ReplyKeyboardRemove() if step == "phone" else None)
        await _show_profile(message, data)
        return
    reg = dict(dialog.get("reg", {}))
    reg[field] = value.isoformat() if isinstance(value, date) else value
    await state.update_data(reg=reg)
    if mode == "review":
        await state.update_data(mode="register")
        await ask_step(message, data, "confirm")
        return
    next_step = STEPS[STEPS.index(step) + 1] if step != STEPS[-1] else "confirm"
    await ask_step(message, data, next_step)


async def keep(message: Message, data: dict[str, Any], step: str) -> None:
    """Leave the field as it is: back to the summary, or to the profile."""
    state: FSMContext = data["state"]
    texts: Texts = data["texts"]
    mode = (await state.get_data()).get("mode", "register")
    if step == "phone":
        # Take the share-contact keyboard away.
        await message.answer(texts("registration/unchanged"), reply_markup=ReplyKeyboardRemove())
    if mode == "profile":
        await end_dialog(state)
        await _show_profile(message, data)
        return
    await state.update_data(mode="register")
    await ask_step(message, data, "confirm")


async def _show_profile(message: Message, data: dict[str, Any]) -> None:
    from handlers.profile import show_profile  # noqa: PLC0415  (the profile view lives with /profile)

    await show_profile(message, data)


async def reject(message: Message, data: dict[str, Any], error: rules.Invalid) -> None:
    texts: Texts = data["texts"]
    await message.answer(texts(f"errors/{error.code}", **error.params))
    await ask_again(message, data)


@router.message(StateFilter(RegistrationForm.name), When((F.text) & (~F.text.startswith("/"))))
async def process_name(message: Message, **data: Any) -> None:
    try:
        value = rules.parse_name(message.text or "")
    except rules.Invalid as error:
        await reject(message, data, error)
        return
    await accept(message, data, "name", value)


@router.message(StateFilter(RegistrationForm.phone), When(F.contact))
async def process_contact(message: Message, **data: Any) -> None:
    settings: Settings = data["settings"]
    contact = message.contact
    assert contact is not None
    # The share button always sends the sender's own contact; a contact card of
    # someone else (or of no Telegram user) is not theirs to give.
    if message.from_user is None or contact.user_id != message.from_user.id:
        await reject(message, data, rules.Invalid("phone_not_own"))
        return
    try:
        value = rules.contact_phone(contact.phone_number, settings.default_region)
    except rules.Invalid as error:
        await reject(message, data, error)
        return
    await _phone_accepted(message, data, value)


@router.message(StateFilter(RegistrationForm.phone), When((F.text) & (~F.text.startswith("/"))))
async def process_phone(message: Message, **data: Any) -> None:
    settings: Settings = data["settings"]
    texts: Texts = data["texts"]
    text = (message.text or "").strip()
    mode = (await data["state"].get_data()).get("mode", "register")
    if mode in EDIT_MODES and text == texts.button("edit_keep"):
        await keep(message, data, "phone")
        return
    try:
        value = rules.parse_phone(text, settings.default_region)
    except rules.Invalid as error:
        await reject(message, data, error)
        return
    await _phone_accepted(message, data, value)


async def _phone_accepted(message: Message, data: dict[str, Any], value: str) -> None:
    texts: Texts = data["texts"]
    mode = (await data["state"].get_data()).get("mode")
    if mode != "profile":
        # Take the share-contact keyboard away before the next question.
        await message.answer(texts("registration/phone_saved", phone=value), reply_markup=ReplyKeyboardRemove())
    await accept(message, data, "phone", value)


@router.message(StateFilter(RegistrationForm.birthday), When((F.text) & (~F.text.startswith("/"))))
async def process_birthday(message: Message, **data: Any) -> None:
    clock: Clock = data["clock"]
    settings: Settings = data["settings"]
    today = clock.now().astimezone(settings.tz).date()
    try:
        value = rules.parse_birthday(message.text or "", today)
    except rules.Invalid as error:
        await reject(message, data, error)
        return
    await accept(message, data, "birthday", value)


@router.message(StateFilter(RegistrationForm.address), When((F.text) & (~F.text.startswith("/"))))
async def process_address(message: Message, **data: Any) -> None:
    try:
        value = rules.parse_address(message.text or "")
    except rules.Invalid as error:
        await reject(message, data, error)
        return
    await accept(message, data, "address", value)


@router.message(StateFilter(RegistrationForm.household), When((F.text) & (~F.text.startswith("/"))))
async def process_household(message: Message, **data: Any) -> None:
    try:
        value = rules.parse_household(message.text or "")
    except rules.Invalid as error:
        await reject(message, data, error)
        return
    await accept(message, data, "household", value)


# ----- buttons ---------------------------------------------------------------

def _valid_press(callback_data: RegCallback, step: str, mode: str) -> bool:
    """Whether this button makes sense at this step (forged data does not)."""
    action, value = callback_data.action, callback_data.value
    if action == "tgname":
        return step == "name"
    if action == "skip":
        return step in OPTIONAL_STEPS
    if action == "keep":
        return (step in STEPS and mode in EDIT_MODES) or step == "confirm"
    if action == "household":
        try:
            rules.parse_household(value)
        except rules.Invalid:
            return False
        return step == "household"
    if action == "consent":
        return step == "consent" and value in ("yes", "no")
    if action in ("confirm", "edit"):
        return step == "confirm"
    if action == "field":
        return step == "confirm" and value in STEPS
    return False


@router.callback_query(RegCallback.filter())
async def process_button(callback: CallbackQuery, callback_data: RegCallback, **data: Any) -> None:
    state: FSMContext = data["state"]
    texts: Texts = data["texts"]
    message = callback.message
    step = _step_of(await state.get_state())
    dialog = await state.get_data()
    mode = dialog.get("mode", "register")
    if (
        step is None
        or step != callback_data.step
        or not isinstance(message, Message)
        or message.message_id <= int(dialog.get("since", 0))
        or not _valid_press(callback_data, step, mode)
    ):
        await callback.answer(texts("common/button_expired.txt"))
        return
    await callback.answer()
    # The question is answered: take its buttons away so they cannot be pressed again.
    try:
        await message.edit_reply_markup(reply_markup=None)
    except TelegramBadRequest:
        pass  # no buttons left to take away (an old client pressed twice)
    action = callback_data.action
    if action == "tgname":
        try:
            value = rules.parse_name(callback.from_user.first_name or "")
        except rules.Invalid as error:
            await reject(message, data, error)
            return
        await accept(message, data, "name", value)
    elif action == "skip":
        await accept(message, data, step, None)
    elif action == "keep":
        await keep(message, data, step)
    elif action == "household":
        await accept(message, data, "household", rules.parse_household(callback_data.value))
    elif action == "consent":
        await accept(message, data, "consent", callback_data.value == "yes")
    elif action == "confirm":
        await _confirm(callback, message, data)
    elif action == "edit":
        builder = InlineKeyboardBuilder()
        for field_step in STEPS:
            builder.button(text=texts.button(f"field_{field_step}"), callback_data=_cb("field", "confirm", field_step))
        builder.button(text=texts.button("edit_back"), callback_data=_cb("keep", "confirm"))
        builder.adjust(2)
        await message.answer(texts("registration/which_field"), reply_markup=builder.as_markup())
    elif action == "field":
        await start_editing(message, data, callback_data.value, "review")


async def _confirm(callback: CallbackQuery, message: Message, data: dict[str, Any]) -> None:
    state: FSMContext = data["state"]
    texts: Texts = data["texts"]
    repos: Repos = data["repos"]
    clock: Clock = data["clock"]
    dialog = await state.get_data()
    reg = dict(dialog.get("reg", {}))
    if not reg.get("name") or not reg.get("phone"):
        # Data lost or forged: walk the missing steps again.
        await ask_step(message, data, "name" if not reg.get("name") else "phone")
        return
    if isinstance(reg.get("birthday"), str):
        reg["birthday"] = date.fromisoformat(reg["birthday"])
    reg["care_consent"] = bool(reg.get("care_consent"))
    customer = await repos.customers.register(callback.from_user.id, reg, texts.lang, clock.now())
    await end_dialog(state)
    await message.answer(texts("registration/done", name=customer.name), reply_markup=menu_keyboard(texts))
