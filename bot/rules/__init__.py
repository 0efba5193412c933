"""Domain rules: pure functions of data and a clock, no Telegram, no I/O."""
