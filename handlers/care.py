"""The buttons of care messages, and the survey's optional comment.

* Reorder reminder: "Order again" (the one-tap reorder of that product,
  source ``reminder``), "Not now" (ask again in a few days), "Stop these
  reminders" (for that product).
* Win-back: "Order again" (the last order, source ``winback``) and "Menu".
* Post-delivery survey: 1–5, then an optional comment (a one-question
  dialog; "Skip" or /cancel leaves it). The comment reaches the staff chat
  as something staff answer by replying (``handlers.conversations``); a low
  rating is also a notice there.

A press finds its care message by the message the button is on (the outbox
row keeps the Telegram message id); it is honoured only from the customer
the message went to, for a message of the right kind. Anything else is
answered "This button has expired".
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy import update

from bot.filters import When
from bot.care_messages import CareCallback
from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import asks, end_dialog
from bot.menu import menu_keyboard
from bot.rules import care as rules
from bot.texts import TextRenderer, Texts
from handlers.conversations import pass_on_comment
from bot.services.tickets import staff_chat_texts, staff_notice_time
from storage.models import Customer, OutboxMessage
from storage.repositories import Repos

router = Router(name="care")
router.message.filter(When(F.chat.type == "private"))
router.callback_query.filter(When(F.message.chat.type == "private"))

COMMENT_LIMIT = 1000
LOW_RATING = 2  # at or below: the staff chat hears about it


class CareSurvey(StatesGroup):
    comment = State()


def _skip_markup(texts: Texts, order_id: int) -> Any:
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("skip"), callback_data=CareCallback(a="skip", v=order_id))
    return builder.as_markup()


@asks(CareSurvey.comment)
async def ask_comment(message: Message, data: dict[str, Any]) -> None:
    texts: Texts = data["texts"]
    dialog = await data["state"].get_data()
    await message.answer(texts("care/ask_comment_again", order_id=dialog.get("care_order")),
                         reply_markup=_skip_markup(texts, dialog.get("care_order", 0)))


async def _row(callback: CallbackQuery, callback_data: CareCallback, data: dict[str, Any],
               kinds: tuple[str, ...]) -> OutboxMessage | None:
    """The care message this button belongs to, if the press is valid; else answered as expired."""
    customer: Customer | None = data.get("customer")
    repos: Repos = data["repos"]
    texts: Texts = data["texts"]
    message = callback.message
    row = (await repos.outbox.by_message(message.chat.id, message.message_id)
           if isinstance(message, Message) else None)
    if (customer is None or row is None or row.customer_id != customer.id or row.kind not in kinds
            or row.category != "care" or row.status not in ("sent", "uncertain")):
        await callback.answer(texts("common/button_expired.txt"))
        return None
    return row


async def _drop_buttons(callback: CallbackQuery) -> None:
    if isinstance(callback.message, Message):
        try:
            await callback.message.edit_reply_markup(reply_markup=None)
        except TelegramBadRequest:
            pass  # already without buttons (a double press)


# ----- reminders and win-backs -----------------------------------------------------------------

@router.callback_query(CareCallback.filter(F.a == "again"))
async def order_again(callback: CallbackQuery, callback_data: CareCallback, **data: Any) -> None:
    """One tap to the reorder summary; the order records the message it answered."""
    from handlers.ordering import begin_reorder

    row = await _row(callback, callback_data, data, (rules.KIND_REORDER, rules.KIND_WINBACK))
    if row is None:
        return
    repos: Repos = data["repos"]
    customer: Customer = data["customer"]
    await callback.answer()
    assert isinstance(callback.message, Message)
    if row.kind == rules.KIND_REORDER and row.ref_product_id is not None:
        quantity = 1
        if row.ref_order_id is not None:
            order = await repos.orders.of_customer(row.ref_order_id, customer.id)
            if order is not None:
                quantity = sum(i.quantity for i in order.items if i.product_id == row.ref_product_id) or 1
        await begin_reorder(callback.message, data["turn"], texts=data["texts"], repos=repos, customer=customer,
                            items=[(row.ref_product_id, quantity)], source="reminder", outbox_id=row.id)
    else:
        await begin_reorder(callback.message, data["turn"], texts=data["texts"], repos=repos, customer=customer,
                            order_id=row.ref_order_id, source="winback", outbox_id=row.id)


@router.callback_query(CareCallback.filter(F.a == "later"))
async def not_now(callback: CallbackQuery, callback_data: CareCallback, **data: Any) -> None:
    row = await _row(callback, callback_data, data, (rules.KIND_REORDER,))
    if row is None or row.ref_product_id is None:
        return
    repos: Repos = data["repos"]
    clock: Clock = data["clock"]
    texts: Texts = data["texts"]
    customer: Customer = data["customer"]
    now = clock.now()
    await repos.care.snooze_product(customer.id, row.ref_product_id, now + timedelta(days=rules.SNOOZE_DAYS),
                                    row.id, now)
    await callback.answer()
    await _drop_buttons(callback)
    assert isinstance(callback.message, Message)
    await callback.message.answer(texts("care/snoozed", days=rules.SNOOZE_DAYS))


@router.callback_query(CareCallback.filter(F.a == "stop"))
async def stop_reminders(callback: CallbackQuery, callback_data: CareCallback, **data: Any) -> None:
    row = await _row(callback, callback_data, data, (rules.KIND_REORDER,))
    if row is None or row.ref_product_id is None:
        return
    repos: Repos = data["repos"]
    clock: Clock = data["clock"]
    texts: Texts = data["texts"]
    customer: Customer = data["customer"]
    await repos.care.stop_product(customer.id, row.ref_product_id, row.id, clock.now())
    await repos.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.customer_id == customer.id, OutboxMessage.kind == rules.KIND_REORDER,
               OutboxMessage.ref_product_id == row.ref_product_id, OutboxMessage.status == "pending")
        .values(status="skipped", skip_reason="stopped for this product")
        .execution_options(synchronize_session=False)
    )
    product = await repos.products.get(row.ref_product_id)
    await callback.answer()
    await _drop_buttons(callback)
    assert isinstance(callback.message, Message)
    await callback.message.answer(texts("care/stopped_product", product=product.name(texts.lang) if product else ""))


@router.callback_query(CareCallback.filter(F.a == "menu"))
async def show_menu(callback: CallbackQuery, callback_data: CareCallback, **data: Any) -> None:
    row = await _row(callback, callback_data, data, (rules.KIND_WINBACK,))
    if row is None:
        return
    texts: Texts = data["texts"]
    customer: Customer = data["customer"]
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.answer(texts("menu/main", name=customer.name), reply_markup=menu_keyboard(texts))


# ----- the survey ------------------------------------------------------------------------------

async def _tell_staff(repos: Repos, renderer: TextRenderer, settings: Settings, clock: Clock, key: str,
                      template: str, **context: Any) -> None:
    if settings.staff_chat_id is None:
        return
    text = (await staff_chat_texts(repos, renderer, settings))(template, **context)
    await repos.outbox.enqueue(dedupe_key=key, kind="survey_notice", chat_id=settings.staff_chat_id, text=text,
                               now=clock.now(), ref_order_id=context.get("order_id"),
                               not_before=staff_notice_time(settings, None, clock.now()))


@router.callback_query(CareCallback.filter(F.a == "rate"))
async def rate_order(callback: CallbackQuery, callback_data: CareCallback, **data: Any) -> None:
    row = await _row(callback, callback_data, data, (rules.KIND_SURVEY,))
    if row is None:
        return
    texts: Texts = data["texts"]
    repos: Repos = data["repos"]
    clock: Clock = data["clock"]
    state: FSMContext = data["state"]
    customer: Customer = data["customer"]
    if row.ref_order_id is None or not 1 <= callback_data.v <= 5:
        await callback.answer(texts("common/button_expired.txt"))
        return
    answer, created = await repos.care.rate(row.ref_order_id, customer.id, row.id, callback_data.v, clock.now())
    await _drop_buttons(callback)
    if not created:
        await callback.answer(texts("care/survey_already.txt"), show_alert=True)
        return
    await callback.answer()
    assert isinstance(callback.message, Message)
    if answer.rating <= LOW_RATING:
        await _tell_staff(repos, data["renderer"], data["settings"], clock, f"survey_low:{answer.order_id}",
                          "care/staff_low_rating", order_id=answer.order_id, rating=answer.rating,
                          customer=customer)
    if await state.get_state() is not None:  # in another dialog: no comment question now
        await callback.message.answer(texts("care/survey_done"))
        return
    await state.set_state(CareSurvey.comment)
    await state.update_data(care_order=answer.order_id)
    await callback.message.answer(texts("care/survey_ask_comment", order_id=answer.order_id, rating=answer.rating),
                                  reply_markup=_skip_markup(texts, answer.order_id))


@router.callback_query(CareCallback.filter(F.a == "skip"))
async def skip_comment(callback: CallbackQuery, callback_data: CareCallback, **data: Any) -> None:
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    dialog = await state.get_data()
    if await state.get_state() != CareSurvey.comment.state or dialog.get("care_order") != callback_data.v:
        await callback.answer(texts("common/button_expired.txt"))
        return
    await end_dialog(state)
    await callback.answer()
    await _drop_buttons(callback)
    assert isinstance(callback.message, Message)
    await callback.message.answer(texts("care/survey_done"))


@router.message(StateFilter(CareSurvey.comment), When((F.text) & (~F.text.startswith("/"))))
async def save_comment(message: Message, **data: Any) -> None:
    texts: Texts = data["texts"]
    state: FSMContext = data["state"]
    repos: Repos = data["repos"]
    clock: Clock = data["clock"]
    customer: Customer | None = data.get("customer")
    comment = (message.text or "").strip()
    dialog = await state.get_data()
    order_id = dialog.get("care_order")
    if customer is None or order_id is None:
        await end_dialog(state)
        await message.answer(texts("common/cancelled"))
        return
    if not comment:
        await message.answer(texts("care/comment_empty"), reply_markup=_skip_markup(texts, order_id))
        return
    if len(comment) > COMMENT_LIMIT:
        await message.answer(texts("care/comment_too_long", limit=COMMENT_LIMIT))
        await ask_comment(message, data)
        return
    await repos.care.add_comment(order_id, customer.id, comment, clock.now())
    answer = await repos.care.answer(order_id)
    await end_dialog(state)
    if answer is not None:  # staff can answer it (a reply to it reaches the customer)
        await pass_on_comment(message, data, comment, {"kind": "order", "id": order_id, "rating": answer.rating},
                              order_id=order_id)
    await message.answer(texts("care/survey_comment_saved", order_id=order_id))
