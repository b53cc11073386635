"""Delivery channels (共享方式): interface, file download, online browsing, offline exchange."""
