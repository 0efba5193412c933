"""The SQL of the reports, the purchase model and the demo data, one module per user.

``bot/reports/<name>.py`` does the arithmetic and the presentation of a report;
``storage/queries/<name>.py`` holds its SQL and returns plain rows, numbers or
dicts (never ORM objects to keep, never SQL for the caller to build on, except
the opaque handles that pass from one of these functions to another).
``common`` holds what several share: which orders count as sales, the
business's day of a stored instant, percentiles, temporary tables.
"""
