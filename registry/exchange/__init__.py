"""Exchange (交换): published versions, run cursors, schema changes, data contracts, change notices, source streams and deliveries."""
