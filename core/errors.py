"""Exceptions grouped by how they are handled (错误按处理方式分组); each class says what to do next.

- ConfigError (配置错误): wrong settings or arguments; fix the configuration, retrying will not help.
  NotFound (未找到) is one: the thing named does not exist; InvalidInput (输入有误, HTTP 422) another: a value a
  person typed that is refused as such (a name a spreadsheet would run).
- RetriableError (可重试错误): a transient fault (network, lock, busy peer); the same call may succeed later.
- FatalError (致命错误): the run cannot go on (broken contract, incompatible schema); an operator must act.
- AccessDenied (拒绝访问): the caller may not do this; AuthenticationFailed (身份认证失败): unknown caller.

A bad row or value is not an exception: it is quarantined with its reason and the run goes on
(`pipeline/quarantine.py`).

Every error declares its data in its constructor; nothing is attached afterwards. A message a person sees is in
Chinese and English: an error raised with its two texts (`zh=`, `en=`) carries both; an error raised with one
text is shown by `user_message()` with its class's advice (`zh_advice`, `en_advice`) in the missing language.
"""

from __future__ import annotations

import re
from typing import ClassVar

_CHINESE = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]{2,}")


def has_chinese(text: str) -> bool:
    return bool(_CHINESE.search(text))


def has_english(text: str) -> bool:
    return bool(_LATIN.search(text))


class GovshareError(Exception):
    """Base of every error the hub raises on purpose."""

    zh_advice: ClassVar[str] = "操作未完成，请按提示处理"
    en_advice: ClassVar[str] = "the operation did not complete; follow the message"

    def __init__(self, message: str = "", *, zh: str = "", en: str = "") -> None:
        self.zh = zh or (message if has_chinese(message) else "")
        self.en = en or (message if has_english(message) else "")
        super().__init__(message or " / ".join(text for text in (zh, en) if text))

    def user_message(self) -> str:
        """The message in Chinese and English: the class's advice stands in for a language the text lacks."""
        text = str(self)
        if not has_chinese(text):
            text = f"{self.zh_advice}：{text}" if text else self.zh_advice
        if not has_english(text):
            text = f"{text} ({self.en_advice})"
        return text


class ConfigError(GovshareError):
    zh_advice: ClassVar[str] = "配置或参数有误，请按提示改正后再试（重试不会成功）"
    en_advice: ClassVar[str] = "fix the configuration or arguments as the message says; retrying will not help"
    http_status: ClassVar[int] = 400  # the API's and the web pages' answer


class InvalidInput(ConfigError):
    """A value a person typed that the hub will not store (HTTP 422), e.g. a name a spreadsheet would run."""

    zh_advice: ClassVar[str] = "输入的内容不能登记，请按提示修改后再提交"
    en_advice: ClassVar[str] = "the value typed cannot be stored; change it as the message says"
    http_status: ClassVar[int] = 422


class NotFound(ConfigError):
    zh_advice: ClassVar[str] = "未找到所指定的对象，请检查名称或编码"
    en_advice: ClassVar[str] = "nothing by that name exists; check the name or code"


class RetriableError(GovshareError):
    zh_advice: ClassVar[str] = "暂时性故障，请稍后重试"
    en_advice: ClassVar[str] = "a transient fault; the same call may succeed later"


class FatalError(GovshareError):
    zh_advice: ClassVar[str] = "运行无法继续，需要运维人员处理"
    en_advice: ClassVar[str] = "the run cannot go on; an operator must act"


class AccessDenied(GovshareError):
    """Known caller, refused (HTTP 403). `audited` is true once the refusal is in the audit log, so the API and
    CLI boundaries do not write it twice."""

    zh_advice: ClassVar[str] = "无权执行此操作，请申请相应权限"
    en_advice: ClassVar[str] = "you may not do this; ask for the permission or grant"

    def __init__(self, zh: str, en: str, *, audited: bool = False) -> None:
        super().__init__(zh=zh, en=en)
        self.audited = audited


class AuthenticationFailed(AccessDenied):
    """Unknown caller: no, wrong, expired or revoked credential (HTTP 401). A revoked API token names itself and
    its agency (`token_id`, `agency_code`) so the audit record says whose credential was used (never the token)."""

    zh_advice: ClassVar[str] = "身份认证失败，请提供有效的凭证"
    en_advice: ClassVar[str] = "authentication failed; present a valid credential"

    def __init__(self, zh: str, en: str, *, audited: bool = False, token_id: int | None = None,
                 agency_code: str | None = None) -> None:
        super().__init__(zh, en, audited=audited)
        self.token_id = token_id
        self.agency_code = agency_code
