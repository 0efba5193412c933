"""Models, database, repositories, dialog-state storage and migrations."""
