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

from aiogram import Bot, F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.care_messages import CareCallback
from bot.clock import Clock
from bot.config import Settings
from bot.dialogs import TYPED, Dialog, StepButton, Turn, set_buttons
from bot.filters import private_router
from bot.menu import menu_keyboard
from bot.rules import care as rules
from bot.services import relay
from bot.services.relay import Words
from bot.services.tickets import staff_chat_texts, staff_notice_time
from bot.texts import TextRenderer, Texts
from storage.models import Customer, OutboxMessage
from storage.repositories import Repos


def build_router() -> Router:
    """A new router with this module's handlers, tried in this order (bot.app.build_routers places it)."""
    router = private_router("care")
    router.callback_query.register(order_again, CareCallback.filter(F.a == "again"))
    router.callback_query.register(not_now, CareCallback.filter(F.a == "later"))
    router.callback_query.register(stop_reminders, CareCallback.filter(F.a == "stop"))
    router.callback_query.register(show_menu, CareCallback.filter(F.a == "menu"))
    router.callback_query.register(rate_order, CareCallback.filter(F.a == "rate"))
    router.callback_query.register(skip_comment, survey.Button.filter())
    router.message.register(save_comment, StateFilter(CareSurvey.comment), TYPED)
    return router


COMMENT_LIMIT = 1000
LOW_RATING = 2  # at or below: the staff chat hears about it


class CareSurvey(StatesGroup):
    comment = State()


def _skip_markup(texts: Texts, order_id: int) -> Any:
    builder = InlineKeyboardBuilder()
    builder.button(text=texts.button("skip"), callback_data=survey.button("skip", "comment", order_id))
    return builder.as_markup()


async def ask_comment(message: Message, texts: Texts, turn: Turn, rating: int | None = None) -> None:
    """The survey's comment question; ``rating``: asked right after it (else asked again)."""
    order_id = (await turn.state.get_data()).get("care_order") or 0
    if rating is not None:
        text = texts("care/survey_ask_comment", order_id=order_id, rating=rating)
    else:
        text = texts("care/ask_comment_again", order_id=order_id)
    await message.answer(text, reply_markup=_skip_markup(texts, order_id))


# The comment after a survey's rating: one question, "Skip" or /cancel leaves it.
survey = Dialog(
    CareSurvey, prefix="cs", ask={CareSurvey.comment: ask_comment},
    buttons={("skip", "comment"): lambda value, data: value == str(data.get("care_order"))},
    errors="care",
)


async def _row(callback: CallbackQuery, kinds: tuple[str, ...], customer: Customer | None, repos: Repos,
               turn: Turn) -> OutboxMessage | None:
    """The care message this button belongs to, if the press is valid; else answered as expired."""
    message = callback.message
    row = (await repos.outbox.by_message(message.chat.id, message.message_id)
           if isinstance(message, Message) else None)
    if (customer is None or row is None or row.customer_id != customer.id or row.kind not in kinds
            or row.category != "care" or row.status not in ("sent", "uncertain")):
        await turn.expired(callback)
        return None
    return row


# ----- reminders and win-backs -----------------------------------------------------------------

async def order_again(callback: CallbackQuery, customer: Customer | None, repos: Repos, texts: Texts,
                      turn: Turn) -> None:
    """One tap to the reorder summary; the order records the message it answered."""
    from handlers.ordering import begin_reorder

    row = await _row(callback, (rules.KIND_REORDER, rules.KIND_WINBACK), customer, repos, turn)
    if row is None or customer is None:
        return
    await callback.answer()
    assert isinstance(callback.message, Message)
    if row.kind == rules.KIND_REORDER and row.ref_product_id is not None:
        quantity = 1
        if row.ref_order_id is not None:
            order = await repos.orders.of_customer(row.ref_order_id, customer.id)
            if order is not None:
                quantity = sum(i.quantity for i in order.items if i.product_id == row.ref_product_id) or 1
        await begin_reorder(callback.message, turn, texts=texts, repos=repos, customer=customer,
                            items=[(row.ref_product_id, quantity)], source="reminder", outbox_id=row.id)
    else:
        await begin_reorder(callback.message, turn, texts=texts, repos=repos, customer=customer,
                            order_id=row.ref_order_id, source="winback", outbox_id=row.id)


async def not_now(callback: CallbackQuery, customer: Customer | None, repos: Repos, clock: Clock, texts: Texts,
                  turn: Turn) -> None:
    row = await _row(callback, (rules.KIND_REORDER,), customer, repos, turn)
    if row is None or row.ref_product_id is None or customer is None:
        return
    now = clock.now()
    await repos.care.snooze_product(customer.id, row.ref_product_id, now + timedelta(days=rules.SNOOZE_DAYS),
                                    row.id, now)
    await callback.answer()
    assert isinstance(callback.message, Message)
    await set_buttons(callback.message)
    await callback.message.answer(texts("care/snoozed", days=rules.SNOOZE_DAYS))


async def stop_reminders(callback: CallbackQuery, customer: Customer | None, repos: Repos, clock: Clock,
                         texts: Texts, turn: Turn) -> None:
    row = await _row(callback, (rules.KIND_REORDER,), customer, repos, turn)
    if row is None or row.ref_product_id is None or customer is None:
        return
    await repos.care.stop_product(customer.id, row.ref_product_id, row.id, clock.now())
    await repos.care.skip_pending_about(customer.id, rules.KIND_REORDER, row.ref_product_id, "stopped for this product")
    product = await repos.products.get(row.ref_product_id)
    await callback.answer()
    assert isinstance(callback.message, Message)
    await set_buttons(callback.message)
    await callback.message.answer(texts("care/stopped_product", product=product.name(texts.lang) if product else ""))


async def show_menu(callback: CallbackQuery, customer: Customer | None, repos: Repos, texts: Texts,
                    turn: Turn) -> None:
    row = await _row(callback, (rules.KIND_WINBACK,), customer, repos, turn)
    if row is None or customer is None:
        return
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


async def rate_order(callback: CallbackQuery, callback_data: CareCallback, customer: Customer | None, repos: Repos,
                     clock: Clock, texts: Texts, renderer: TextRenderer, settings: Settings, turn: Turn) -> None:
    row = await _row(callback, (rules.KIND_SURVEY,), customer, repos, turn)
    if row is None or customer is None:
        return
    if row.ref_order_id is None or not 1 <= callback_data.v <= 5:
        await turn.expired(callback)
        return
    answer, created = await repos.care.rate(row.ref_order_id, customer.id, row.id, callback_data.v, clock.now())
    assert isinstance(callback.message, Message)
    await set_buttons(callback.message)
    if not created:
        await callback.answer(texts("care/survey_already.txt"), show_alert=True)
        return
    await callback.answer()
    if answer.rating <= LOW_RATING:
        await _tell_staff(repos, renderer, settings, clock, f"survey_low:{answer.order_id}",
                          "care/staff_low_rating", order_id=answer.order_id, rating=answer.rating,
                          customer=customer)
    if await turn.state.get_state() is not None:  # in another dialog: no comment question now
        await callback.message.answer(texts("care/survey_done"))
        return
    await turn.begin(callback.message, care_order=answer.order_id)
    await turn.ask(callback.message, CareSurvey.comment, rating=answer.rating)


async def skip_comment(callback: CallbackQuery, callback_data: StepButton, texts: Texts, turn: Turn) -> None:
    press = await turn.press(callback, callback_data)
    if press is None:
        return
    await turn.end()
    await press.message.answer(texts("care/survey_done"))


async def save_comment(message: Message, turn: Turn, customer: Customer | None, texts: Texts, repos: Repos,
                       clock: Clock, settings: Settings, renderer: TextRenderer, bot: Bot) -> None:
    comment = (message.text or "").strip()
    order_id = (await turn.state.get_data()).get("care_order")
    if customer is None or order_id is None:
        await turn.end()
        await message.answer(texts("common/cancelled"))
        return
    if not comment:
        await message.answer(texts("care/comment_empty"), reply_markup=_skip_markup(texts, order_id))
        return
    if len(comment) > COMMENT_LIMIT:
        await turn.say_and_ask_again(message, texts("care/comment_too_long", limit=COMMENT_LIMIT))
        return
    await repos.care.add_comment(order_id, customer.id, comment, clock.now())
    answer = await repos.care.answer(order_id)
    await turn.end()
    if answer is not None:  # staff can answer it (a reply to it reaches the customer)
        await relay.pass_on_comment(bot, repos, renderer, settings, clock.now(), customer,
                                    Words(text=comment, photo=None, message_id=message.message_id),
                                    {"kind": "order", "id": order_id, "rating": answer.rating}, order_id=order_id)
    await message.answer(texts("care/survey_comment_saved", order_id=order_id))
