"""What Alembic imports: every capability's tables, so that one metadata (`registry.orm.Base`) holds them all.

The tables live beside their services, in each capability package's `models.py` (and `*_models.py`); import
them from there. Every change to a table needs an Alembic migration in registry/migrations/versions.
"""

from __future__ import annotations

import registry.audit.models  # noqa: F401
import registry.catalog.models  # noqa: F401
import registry.catalog.search_models  # noqa: F401
import registry.exchange.delivery_models  # noqa: F401
import registry.exchange.models  # noqa: F401
import registry.exchange.notice_models  # noqa: F401
import registry.people.models  # noqa: F401
import registry.quality.models  # noqa: F401
import registry.sharing.models  # noqa: F401
import registry.supervision.models  # noqa: F401
