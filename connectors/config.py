"""A source's configuration (数据源配置) as a pydantic model: each connector declares its `config_model`.

The model names the settings the connector reads with their types; settings it does not name are kept (driver
options, stream settings the connector checks itself). `required` settings must be given and not empty, unless
an Airflow connection (`airflow_conn_id`) provides those in `airflow_fields`. A problem becomes a ConfigError
naming the source kind and the setting, in Chinese and English (`parse_config`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from connectors.credentials import required_unless_airflow
from core.errors import ConfigError


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    required: ClassVar[tuple[str, ...]] = ()
    # settings an Airflow connection may provide instead: setting -> the connection's attribute
    airflow_fields: ClassVar[dict[str, str]] = {}

    airflow_conn_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _required_given(cls, data: Any) -> Any:
        if isinstance(data, dict):
            required = required_unless_airflow(data, cls.required, tuple(cls.airflow_fields))
            if missing := [key for key in required if not data.get(key)]:
                raise PydanticCustomError("settings_missing", "{settings}", {"settings": ", ".join(missing)})
        return data


def _setting(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(configuration)"


def parse_config(kind: str, model: type[SourceConfig], config: dict[str, Any]) -> SourceConfig:
    """The validated configuration, or a ConfigError naming each setting that is missing or wrong."""
    try:
        return model.model_validate(config)
    except ValidationError as exc:
        zh, en = [], []
        for error in exc.errors(include_url=False):
            if error["type"] == "settings_missing":
                missing = error["ctx"]["settings"]
                zh.append(f"缺少配置项 {missing}")
                en.append(f"a {kind} source needs {missing} in its configuration")
            else:
                reason = str(error.get("ctx", {}).get("error") or error["msg"])
                zh.append(f"配置项 {_setting(error)} 无效")
                en.append(f"a {kind} source's setting {_setting(error)}: {reason}")
        raise ConfigError(f"{kind} 数据源：{'；'.join(zh)} / {'; '.join(en)}") from None
