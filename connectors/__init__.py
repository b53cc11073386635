"""Source connectors, one module per kind, found through the ``govshare.connectors`` entry points."""
