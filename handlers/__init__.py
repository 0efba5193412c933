"""The Telegram edge: one module per conversation, each with its router(s).

The routers are assembled, in the order updates try them, by the composition
function (``bot.app.build_routers``); a handler gets what it needs as typed
parameters, injected by name from the dispatcher's data and the middlewares.
"""
