"""The govshare HTTP service (FastAPI): catalogue, versions and downloads; pages come later."""
