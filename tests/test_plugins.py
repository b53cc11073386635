"""One plugin lookup for connectors and rule types; connectors declare their settings and what they can do."""

from __future__ import annotations

import pytest

from connectors.base import CAPABILITIES, Connector
from connectors.config import SourceConfig
from connectors.kinds import available_kinds, connector_class
from core.errors import ConfigError, has_chinese
from core.plugins import kinds, lookup
from quality.checks import Rule, check_types, rule_class


def test_one_lookup_serves_connectors_and_rule_types() -> None:
    assert available_kinds() == kinds("govshare.connectors")
    assert check_types() == kinds("govshare.checks")
    assert lookup("govshare.connectors", "sqlite", base=Connector) is connector_class("sqlite")
    assert lookup("govshare.checks", "unique", base=Rule) is rule_class("unique")


@pytest.mark.parametrize(("group", "base", "words"), [
    ("govshare.connectors", Connector, "unknown source kind 'oracle'; known kinds: "),
    ("govshare.checks", Rule, "unknown rule type 'oracle'; known types: "),
])
def test_an_unknown_kind_lists_the_known_ones_in_both_languages(group: str, base: type, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        lookup(group, "oracle", base=base)
    message = str(raised.value)
    assert words in message and has_chinese(message.split(" / ")[0])
    for known in kinds(group):
        assert known in message


def test_a_plugin_of_the_wrong_base_is_refused() -> None:
    with pytest.raises(ConfigError, match="is not a quality.checks.base.Rule subclass"):
        lookup("govshare.connectors", "sqlite", base=Rule)


def test_every_connector_declares_its_settings_and_capabilities() -> None:
    for kind in available_kinds():
        cls = connector_class(kind)
        assert issubclass(cls.config_model, SourceConfig) and cls.config_model is not SourceConfig, kind
        assert "validate_config" not in vars(cls), f"{kind}: settings belong in its config model"
        assert cls.capabilities <= CAPABILITIES, kind
        # a key scan is what read_keys does; a connector without it keeps the base's refusal
        assert ("key_scan" in cls.capabilities) == (cls.read_keys is not Connector.read_keys), kind
    assert "cdc" in connector_class("postgresql").capabilities
    assert "cdc" not in connector_class("mysql").capabilities


@pytest.mark.parametrize(("kind", "config", "zh", "en"), [
    ("postgresql", {"host": "127.0.0.1"}, "缺少配置项 dbname, user", "a postgresql source needs dbname, user"),
    ("postgresql", {"host": "h", "dbname": "d", "user": "u", "port": "five"}, "配置项 port 无效",
     "a postgresql source's setting port: Input should be a valid integer"),
    ("postgresql", {"host": "h", "dbname": "d", "user": "u", "reader": "fast"}, "配置项 reader 无效",
     "setting reader: Input should be 'auto' or 'adbc'"),
    ("http", {"base_url": "ftp://example.org"}, "配置项 base_url 无效", "must start with http:// or https://"),
    ("http", {"base_url": "https://example.org", "auth": "kerberos"}, "配置项 auth 无效",
     "'kerberos' must be one of none, bearer, basic, header"),
    ("sqlalchemy", {"url": "oracle://scott:tiger@db/orcl"}, "配置项 url 无效", "not in the URL"),
    ("mysql", {"host": "h", "database": "d", "user": "u", "datetime_timezone": "Mars/Base"},
     "配置项 datetime_timezone 无效", "'Mars/Base' is not a known time zone"),
])
def test_a_wrong_setting_is_named_in_both_languages(kind: str, config: dict, zh: str, en: str) -> None:
    with pytest.raises(ConfigError) as raised:
        connector_class(kind)(name="src", config=config)
    assert zh in raised.value.zh and en in raised.value.en
    assert kind in str(raised.value)


def test_an_airflow_connection_provides_the_settings_it_names() -> None:
    connector_class("mysql").validate_config({"airflow_conn_id": "biz_db"})
    with pytest.raises(ConfigError, match="a postgresql source needs host, dbname, user"):
        connector_class("postgresql").validate_config({"airflow_conn_id": "biz_db"})
    settings = connector_class("postgresql").validate_config({"host": "h", "dbname": "d", "user": "u", "port": "6432"})
    assert settings.port == 6432
