"""API routers, one module per capability; api/app.py includes each module's `router`."""
