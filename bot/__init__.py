"""CareDesk: a customer-care desk inside Telegram."""
