"""The identifier kinds (标识符类型) on their own, outside `quality.identifiers`.

`govshare validate file --kind` takes its choices from this enum when the command line is built; the
validators' package imports numpy and pyarrow as it loads, which every `govshare` command (`--help` included)
would then pay for. `quality.identifiers` re-exports the enum, so both names are the same class.
"""

from __future__ import annotations

from enum import StrEnum


class IdentifierKind(StrEnum):
    """Which identifier a column holds (标识符类型)."""

    USCC = "uscc"  # 统一社会信用代码
    IDCARD = "idcard"  # 居民身份证号码
    ORGCODE = "orgcode"  # 组织机构代码
