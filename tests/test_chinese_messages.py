"""What a consumer system's operator reads is in Chinese (English kept beside it): the commands that set up a
consumer (user add, token issue, notices set-webhook and its secret line), and the API's 400 answers to a bad
cursor, a malformed `where=` or a value its column cannot hold, whose `detail_zh` used to be a generic Chinese
prefix before the English text."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from core.errors import ConfigError, has_chinese
from samples.loaders import load_sqlite
from tests.delivery_helpers import delivery_hub
from tests.helpers import CONSUMER, register_resource

GENERIC = ConfigError.zh_advice  # the class's advice: what detail_zh fell back to before the English text


def _cli(*args: str):  # noqa: ANN202
    from cli.main import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250", "GOVSHARE_TEST_PW": "correct-horse-battery"})


def test_setting_up_a_consumer_system_is_told_in_chinese(hub_home: Path, tmp_path: Path) -> None:
    database = tmp_path / "biz.db"
    load_sqlite(database, rows=10, seed=1)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, subscribe=True)

    added = _cli("user", "add", "zhang.wei", "--agency", CONSUMER[0], "--role", "data_admin",
                 "--password-env", "GOVSHARE_TEST_PW")
    assert added.exit_code == 0, added.output
    assert f"已为{CONSUMER[1]}添加用户 zhang.wei（数据资源管理员）" in added.output

    issued = _cli("token", "issue", CONSUMER[0], "--name", "hr-sync", "--days", "30")
    assert issued.exit_code == 0, issued.output
    assert re.fullmatch(r"gsk_\S+\n", issued.stdout)  # alone on standard output: TOKEN=$(govshare token issue ...)
    assert "访问令牌已签发" in issued.stderr and "有效期 30 天" in issued.stderr and "仅显示这一次" in issued.stderr

    hooked = _cli("notices", "set-webhook", hub.resource_code, "--agency", CONSUMER[0], "--url",
                  "https://hr.example/hooks/govshare")
    assert hooked.exit_code == 0, hooked.output
    assert "的更新通知将推送到 https://hr.example/hooks/govshare" in hooked.output
    assert re.search(r"签名密钥（仅显示这一次[^）]*） / signing secret .*: whsec_\S+", hooked.output), hooked.output


def test_the_apis_400_answers_say_what_is_wrong_in_chinese(hub_home: Path, tmp_path: Path) -> None:
    with delivery_hub(tmp_path, rows=40) as site:
        records = f"/api/v1/resources/{site.hub.resource_code}/records"
        asked = {
            "bad cursor": ({"cursor": "bm90LWEtY3Vyc29y"}, "游标（cursor）不是本服务签发的",
                           "cursor is not one this service issued"),
            "where syntax": ({"where": "status"}, "查询条件“status”格式有误，应为 数据项:值",
                             "filter 'status' must read column:value"),
            "out of range": ({"where": "id:99999999999999999999"}, "“99999999999999999999”不是数据项“id”可取的值",
                             "is not a valid int64 for column 'id'"),
        }
        for case, (params, zh, en) in asked.items():
            answer = site.get(records, token=site.hub.token, params=params)
            assert answer.status_code == 400, (case, answer.text)
            body = answer.json()
            assert body["detail_zh"].startswith(zh) and GENERIC not in body["detail_zh"], (case, body)
            assert en in body["detail"] and not has_chinese(body["detail"].replace("存续", "")), (case, body)
        feed = site.get("/api/v1/notices", token=site.hub.token, params={"after": "abc"})
        assert feed.status_code == 400 and feed.json()["detail_zh"].startswith("游标“abc”不是本通知接口返回的")
