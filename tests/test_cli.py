"""The `siyu` command against the WeCom emulator: connect a corp, sync, inspect."""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import get_settings
from siyu.emulator.app import create_emulator_app
from tests.support import TEST_SECRET_KEY
from tests.support.servers import serve
from tests.support.stack import DEPARTMENTS, STAFF


@pytest.fixture
def siyu(tmp_path, database_url, monkeypatch):
    with serve(create_emulator_app()) as url:
        monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("SIYU_DATABASE_URL", database_url)
        monkeypatch.setenv("SIYU_WECOM_BASE_URL", url)
        monkeypatch.setenv("SIYU_PUBLIC_URL", "https://scrm.example.com")
        monkeypatch.setenv("SIYU_SECRET_KEY", TEST_SECRET_KEY)  # the key of the shared database's tenants
        corp = httpx.post(
            f"{url}/_emulator/corps", json={"name": "乙公司", "departments": DEPARTMENTS, "staff": STAFF}
        ).json()
        runner = CliRunner()

        def invoke(*args: str):
            get_settings.cache_clear()
            result = runner.invoke(app, list(args), catch_exceptions=False)
            return result.exit_code, result.output

        yield invoke, corp
    get_settings.cache_clear()


def add_args(corp, **change) -> list[str]:
    values = {
        "name": "乙公司",
        "corp-id": corp["corp_id"],
        "agent-id": str(corp["agent_id"]),
        "agent-secret": corp["agent_secret"],
        "contact-secret": corp["contact_secret"],
        "token": corp["token"],
        "aes-key": corp["encoding_aes_key"],
        "slug": corp["corp_id"].lower(),
    }
    values.update(change)
    return ["tenant", "add", *[x for k, v in values.items() for x in (f"--{k}", v)]]


def test_connect_sync_and_inspect(siyu):
    invoke, corp = siyu
    code, out = invoke(*add_args(corp, **{"contact-secret": "wrong"}))
    assert code == 1 and "客户联系 Secret" in out
    code, out = invoke(*add_args(corp))
    assert code == 0, out
    slug = corp["corp_id"].lower()
    assert f"https://scrm.example.com/wecom/callback/{slug}" in out
    assert corp["agent_secret"] not in out
    code, out = invoke("tenant", "show", slug)
    assert code == 0 and corp["corp_id"] in out and corp["contact_secret"] not in out
    code, out = invoke("sync", "staff", "--tenant", slug)
    assert code == 0 and "2 departments and 4 staff" in out
    code, out = invoke("sync", "customers", "--tenant", slug)
    assert code == 0 and "0 customer relations" in out
    code, out = invoke(
        "person",
        "add",
        "--tenant",
        slug,
        "--login",
        f"admin-{slug}",
        "--name",
        "管理员",
        "--role",
        "admin",
        "--password",
        "pw-123456",
    )
    assert code == 0
    code, out = invoke("tenant", "show", "nobody")
    assert code == 1 and "no tenant" in out


def test_every_command_explains_itself():
    runner = CliRunner()
    for args in (
        ["--help"],
        ["demo", "--help"],
        ["serve", "--help"],
        ["worker", "--help"],
        ["emulator", "--help"],
        ["migrate", "--help"],
        ["tenant", "add", "--help"],
        ["tenant", "set-timezone", "--help"],
        ["sync", "customers", "--help"],
        ["archive", "import", "--help"],
        ["token", "add", "--help"],
        ["events", "retry", "--help"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and len(result.output) > 100, args


def test_the_archive_callback_pair_from_the_command_line(siyu):
    invoke, corp = siyu
    slug = corp["corp_id"].lower() + "-a"
    code, out = invoke(*add_args(corp, slug=slug))
    assert code == 0, out
    code, out = invoke("tenant", "archive-callback", slug, "--token", "tok", "--aes-key", "short")
    assert code == 1 and "EncodingAESKey" in out
    code, out = invoke("tenant", "archive-callback", slug)  # generated
    assert code == 0, out
    assert f"https://scrm.example.com/wecom/callback/{slug}/archive" in out
    token = out.split("Token: ", 1)[1].split()[0]
    aes_key = out.split("EncodingAESKey: ", 1)[1].split()[0]
    assert len(token) == 32 and len(aes_key) == 43
    code, out = invoke("tenant", "show", slug)
    assert code == 0 and "archive_callback_url" in out and "/archive" in out  # (the table folds it)
    assert "archive_token" in out and token not in out and aes_key not in out
    assert token[:3] + "••••" + token[-3:] in out
    # a pair WeCom may be using is not replaced unasked, nor half of it
    code, out = invoke("tenant", "archive-callback", slug)
    assert code == 1 and "has an archive callback pair already" in out and "--replace" in out
    code, out = invoke("tenant", "archive-callback", slug, "--token", "abc")
    assert (
        code == 1
        and "请都填写，或都留空以生成新的一对 / give both the Token and the EncodingAESKey, or neither" in out
    )
    assert token[:3] + "••••" + token[-3:] in invoke("tenant", "show", slug)[1]  # kept
    code, out = invoke("tenant", "archive-callback", slug, "--replace")
    assert code == 0 and token not in out and "Token: " in out


def test_the_time_zone_from_the_command_line(siyu):
    invoke, corp = siyu
    slug = corp["corp_id"].lower() + "-tz"
    assert invoke(*add_args(corp, slug=slug))[0] == 0
    code, out = invoke("tenant", "show", slug)
    assert code == 0 and "Asia/Shanghai" in out
    code, out = invoke("tenant", "set-timezone", slug, "Mars/Olympus")
    assert code == 1 and "时区「Mars/Olympus」不存在" in out and "Traceback" not in out
    code, out = invoke("tenant", "set-timezone", slug, "Asia/Singapore")
    assert code == 0 and f"{slug}: time zone Asia/Singapore" in out, out
    code, out = invoke("tenant", "show", slug)
    assert code == 0 and re.search(r"timezone +│ Asia/Singapore +│", out)
    # who changed it: the operator, whom Siyu does not know, and from which zone
    assert re.search(r"timezone_changed +│ Asia/Shanghai → Asia/Singapore, 命令行 20\d\d-", out)
    code, out = invoke("tenant", "set-timezone", "nobody", "Asia/Singapore")
    assert code == 1 and "no tenant" in out


def test_archive_skip_takes_only_the_seq_the_pull_is_stuck_at(siyu):
    invoke, corp = siyu
    slug = corp["corp_id"].lower() + "-k"
    assert invoke(*add_args(corp, slug=slug))[0] == 0
    code, out = invoke("archive", "skip", "--tenant", slug, "--seq", "5")
    assert code == 1 and "nothing skipped: the archive is not stuck at seq 5" in out


def test_archive_import_stores_a_file_once_and_refuses_a_bad_one_whole(siyu, tmp_path):
    invoke, corp = siyu
    slug = corp["corp_id"].lower() + "-i"
    assert invoke(*add_args(corp, slug=slug))[0] == 0

    def line(n: int, sender: str, to: str, text: str, **change) -> str:
        message = {
            "msgid": f"mig{n}",
            "action": "send",
            "from": sender,
            "tolist": [to],
            "roomid": "",
            "msgtime": 1764036000000 + n * 60_000,
            "msgtype": "text",
            "text": {"content": text},
        }
        return json.dumps({**message, **change}, ensure_ascii=False)

    chat = tmp_path / "old-archive.jsonl"
    chat.write_text(
        "\n".join(
            [
                line(1, "wmMigrated", "zhangsan", "这款有现货吗"),
                line(2, "zhangsan", "wmMigrated", "有的，今天下单明天发"),
                line(3, "wmMigrated", "zhangsan", "好的谢谢"),
            ]
        ),
        encoding="utf-8",
    )
    code, out = invoke("archive", "import", str(chat), "--tenant", slug)
    assert code == 0 and "3 messages stored; 0 stored before" in out, out
    code, out = invoke("archive", "import", str(chat), "--tenant", slug)
    assert code == 0 and "0 messages stored; 3 stored before" in out, out

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        line(4, "wmMigrated", "zhangsan", "还有别的颜色吗")
        + "\n"
        + line(5, "zhangsan", "wmMigrated", "有", msgtime=1764036000),
        encoding="utf-8",
    )
    code, out = invoke("archive", "import", str(bad), "--tenant", slug)
    assert code == 1 and "nothing imported" in out and "line 2" in out and "milliseconds" in out
    for wrong, says in (
        (line(5, "wmMigrated", "zhangsan", "").replace('{"content": ""}', '"hi"'), "text must be"),
        (line(5, "wmMigrated", "zhangsan", "", action="recall", msgtype="revoke", revoke="mig1"), "revoke"),
        (line(4, "wmMigrated", "zhangsan", "again"), "msgid mig4 is used by line 1 too"),
    ):
        bad.write_text(line(4, "wmMigrated", "zhangsan", "还有别的颜色吗") + "\n" + wrong, encoding="utf-8")
        code, out = invoke("archive", "import", str(bad), "--tenant", slug)
        assert code == 1 and "nothing imported" in out and "line 2" in out and says in out, out
    # NUL and a lone surrogate, as JSON escapes: PostgreSQL holds neither, so they are cleaned
    odd = line(4, "wmMigrated", "zhangsan", "还有别的颜色吗").replace("吗", "吗\\u0000\\ud800")
    bad.write_text(odd, encoding="utf-8")
    code, out = invoke("archive", "import", str(bad), "--tenant", slug)
    assert code == 0 and "1 messages stored" in out  # the refused files had stored nothing


def test_operator_mistakes_get_one_line_and_status_1(siyu, monkeypatch, tmp_path):
    from cryptography.fernet import Fernet

    invoke, corp = siyu
    slug = corp["corp_id"].lower() + "-m"
    assert invoke(*add_args(corp, slug=slug))[0] == 0

    def refused(*args: str) -> str:
        code, out = invoke(*args)
        assert code == 1 and "Traceback" not in out and len(out.strip().splitlines()) <= 2, (args, out)
        return out

    person = ["person", "add", "--tenant", slug, "--name", "王五", "--password", "pw-123456"]
    assert invoke(*person, "--login", f"ops-{slug}", "--role", "admin")[0] == 0
    # is taken: had been an IntegrityError
    assert "is taken" in refused(*person, "--login", f"ops-{slug}", "--role", "admin")
    assert "only by case" in refused(*person, "--login", f"OPS-{slug}", "--role", "admin")
    assert "--role must be" in refused(*person, "--login", f"x-{slug}", "--role", "superuser")
    assert "must not be blank" in refused(*person, "--login", " ", "--role", "agent")
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "")  # Enter at the password prompt
    no_password = [
        "person",
        "add",
        "--tenant",
        slug,
        "--login",
        f"np-{slug}",
        "--name",
        "x",
        "--role",
        "agent",
    ]
    assert "a password is needed" in refused(*no_password)  # it had made a login nobody could use
    assert "callback URL" in refused(*add_args(corp, slug="bad slug/../x"))
    # WeCom unreachable
    monkeypatch.setenv("SIYU_WECOM_BASE_URL", "http://127.0.0.1:9")
    assert refused("sync", "staff", "--tenant", slug).startswith("WeCom:")
    # another secret key: nothing is written with it
    monkeypatch.setenv("SIYU_SECRET_KEY", Fernet.generate_key().decode())
    assert "does not open" in refused("tenant", "archive-callback", slug)
    monkeypatch.setenv("SIYU_SECRET_KEY", TEST_SECRET_KEY)
    assert invoke("tenant", "show", slug)[0] == 0
    # the database
    monkeypatch.setenv("SIYU_DATABASE_STATEMENT_TIMEOUT_S", "-1")
    assert "SIYU_DATABASE_STATEMENT_TIMEOUT_S must be seconds (0 = no limit)" in refused("tenant", "list")
    monkeypatch.delenv("SIYU_DATABASE_STATEMENT_TIMEOUT_S")
    monkeypatch.setenv("SIYU_DATABASE_URL", "garbage")
    assert "SIYU_DATABASE_URL" in refused("tenant", "list")
    monkeypatch.setenv("SIYU_DATABASE_URL", f"sqlite:///{tmp_path / 'never-migrated.db'}")
    monkeypatch.setenv("SIYU_AUTO_MIGRATE", "false")
    assert "siyu migrate" in refused("tenant", "list")  # a worker had looped on errors
    # a port no machine has
    assert invoke("serve", "--port", "70000")[0] == 2


def test_the_demo_empties_only_its_own_folder(tmp_path):
    from siyu.demo import run_demo
    from tests.support.servers import free_port

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "customers.csv").write_text("keep me")
    with pytest.raises(SystemExit, match="not a demo's folder"):
        run_demo(port=free_port(), emulator_port=free_port(), data_dir=str(precious))
    assert (precious / "customers.csv").read_text() == "keep me"


def test_the_demos_siyu_starts_without_the_migration_tools_lines(tmp_path):
    """The demo's console is for what happens in its world: Siyu's server and worker each
    printed alembic's INFO lines as they checked the schema (about 20 before the first card)."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time
    from pathlib import Path

    from siyu.demo import demo_env
    from tests.support.servers import free_port

    src = str(Path(__file__).resolve().parents[1] / "src")
    port = free_port()
    env = demo_env(tmp_path, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{free_port()}")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    env["SIYU_SECRET_KEY"] = TEST_SECRET_KEY
    proc = subprocess.Popen(
        [sys.executable, "-m", "siyu.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:  # both up: the server, then the worker it starts (which checks the schema again)
        deadline = time.monotonic() + 90
        while not any("worker started" in line for line in list(lines)) and time.monotonic() < deadline:
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(timeout=10)
    said = "".join(lines)
    assert "worker started" in said and "Application startup complete" in said, said
    assert "alembic" not in said, said


def test_archive_import_names_a_line_no_archive_could_hold(siyu, tmp_path):
    invoke, corp = siyu
    slug = corp["corp_id"].lower() + "-n"
    assert invoke(*add_args(corp, slug=slug))[0] == 0
    odd = tmp_path / "odd.jsonl"
    for content, says in (
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),  # had been a RecursionError
        (
            json.dumps({"msgid": "x", "text": {"content": "字" * 1_000_001}}),
            "no archived message is that long",
        ),
    ):
        odd.write_text(content, encoding="utf-8")
        code, out = invoke("archive", "import", str(odd), "--tenant", slug)
        assert code == 1 and "nothing imported" in out and "line 1" in out and says in out, out[:300]


def test_tenant_add_says_when_it_updates_a_connected_corp_and_keeps_slugs_apart(siyu):
    invoke, corp = siyu
    slug = corp["corp_id"].lower() + "-u"
    code, out = invoke(*add_args(corp, slug=slug))
    assert code == 0 and "already connected" not in out
    code, out = invoke(*add_args(corp, slug=slug + "x", name="乙公司（新）"))
    assert code == 0 and f"already connected as {slug}" in out and f"slug stays {slug}" in out
    assert f"/wecom/callback/{slug}" in out and "乙公司（新）" in out
    other = add_args(corp, slug=slug, **{"corp-id": corp["corp_id"] + "z"})
    code, out = invoke(*other, "--no-check")  # a second corp asking for a slug in use
    assert code == 1 and "already another corp's" in out
    code, out = invoke("tenant", "list")
    assert corp["corp_id"] + "z" not in out


def test_a_public_url_wecom_cannot_reach_is_pointed_out(siyu, monkeypatch):
    invoke, corp = siyu
    slug = corp["corp_id"].lower() + "-p"
    code, out = invoke(*add_args(corp, slug=slug))
    assert code == 0 and "SIYU_PUBLIC_URL" not in out  # https://scrm.example.com
    monkeypatch.delenv("SIYU_PUBLIC_URL")
    code, out = invoke("tenant", "show", slug)
    assert code == 0 and "SIYU_PUBLIC_URL" not in out  # WeCom is the emulator here: it can call back
    monkeypatch.setenv("SIYU_WECOM_BASE_URL", "https://qyapi.weixin.qq.com")
    code, out = invoke("tenant", "show", slug)
    assert code == 0 and "SIYU_PUBLIC_URL is http://127.0.0.1:8000, which WeCom's servers cannot reach" in out


def test_a_public_url_without_its_scheme_is_refused_in_one_line(siyu, monkeypatch):
    invoke, _ = siyu
    monkeypatch.setenv("SIYU_PUBLIC_URL", "scrm.example.com")
    code, out = invoke("tenant", "list")  # every URL printed would have been unusable
    assert code == 1 and out.strip() == (
        "SIYU_PUBLIC_URL must be an address like https://scrm.example.com, not 'scrm.example.com'"
    )


@pytest.mark.parametrize(
    ("public_url", "reachable"),
    [
        ("http://127.0.0.1:8000", False),
        ("http://localhost:8000", False),
        ("http://192.168.1.20", False),
        ("http://10.0.0.5:8000", False),
        ("http://scrm", False),
        ("http://[::1]:8000", False),
        ("https://scrm.example.com", True),
        ("http://203.0.113.9:8000", False),  # documentation range
        ("http://119.29.29.29:8000", True),
    ],
)
def test_which_public_urls_wecom_cannot_reach(public_url, reachable):
    from siyu.config import Settings

    settings = Settings(public_url=public_url, wecom_base_url="https://qyapi.weixin.qq.com")
    assert (settings.public_url_warning() == "") is reachable
    assert Settings(public_url=public_url, wecom_base_url="http://127.0.0.1:8081").public_url_warning() == ""


def never_start(monkeypatch) -> None:
    """A server or worker that got past its checks fails the test rather than running on."""

    def started(*args, **kwargs):
        raise AssertionError("started though it should have refused")

    async def worked(*args, **kwargs):
        started()

    monkeypatch.setattr("uvicorn.run", started)
    monkeypatch.setattr("siyu.jobs.worker.Worker.run", worked)


def test_commands_refuse_a_schema_behind_the_code_and_migrate_says_what_it_did(siyu, monkeypatch, tmp_path):
    from alembic import command

    from siyu.db import Database

    invoke, _ = siyu
    url = f"sqlite:///{tmp_path / 'behind.db'}"
    behind = Database(url)
    with behind.engine.begin() as conn:
        command.upgrade(behind._alembic(conn), "0008")  # as the last release left it
    head = behind.schema_revisions()[1]  # this code's newest migration
    behind.dispose()
    monkeypatch.setenv("SIYU_DATABASE_URL", url)
    monkeypatch.setenv("SIYU_AUTO_MIGRATE", "false")
    never_start(monkeypatch)
    for args in (("tenant", "list"), ("worker",), ("serve", "--port", "8399")):
        code, out = invoke(*args)  # (a server and a worker had run on, failing on every page and row)
        refused = f"the database schema is at 0008, this Siyu needs {head}: run `siyu migrate`"
        assert code == 1 and refused in out
    code, out = invoke("migrate")
    assert code == 0 and f"schema migrated from 0008 to {head}" in out
    code, out = invoke("migrate")
    assert code == 0 and "schema is up to date" in out and f"({head})" in out
    assert invoke("tenant", "list")[0] == 0
    # migrated by a newer Siyu (this one rolled back): "run `siyu migrate`" would not help
    ahead = Database(url)
    with ahead.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0999'")
    ahead.dispose()
    for args in (("tenant", "list"), ("migrate",)):
        code, out = invoke(*args)
        assert code == 1 and "at 0999, which this Siyu does not know" in out and len(out.splitlines()) == 1


def test_a_key_that_does_not_open_the_tenants_secrets_stops_every_command(siyu, monkeypatch, tmp_path):
    invoke, corp = siyu
    slug = corp["corp_id"].lower() + "-k"
    assert invoke(*add_args(corp, slug=slug))[0] == 0
    # run from another folder without SIYU_SECRET_KEY: a new key file would be made there
    monkeypatch.delenv("SIYU_SECRET_KEY")
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "elsewhere"))
    never_start(monkeypatch)
    for args in (("tenant", "list"), ("worker",), ("serve", "--port", "8399")):
        code, out = invoke(*args)  # a server had started and answered WeCom's URL check with a 500
        assert code == 1 and "SIYU_SECRET_KEY does not open the secrets of" in out
        assert f"it is unset, and a new key made in {tmp_path / 'elsewhere' / 'secret.key'} is not" in out
        assert not (tmp_path / "elsewhere" / "secret.key").exists()  # not left to be taken for theirs


def test_tenant_add_takes_the_secrets_from_the_environment(siyu, monkeypatch):
    invoke, corp = siyu
    slug = corp["corp_id"].lower() + "-e"
    monkeypatch.setenv("SIYU_AGENT_SECRET", corp["agent_secret"])
    monkeypatch.setenv("SIYU_CONTACT_SECRET", corp["contact_secret"])
    monkeypatch.setenv("SIYU_CALLBACK_TOKEN", corp["token"])
    monkeypatch.setenv("SIYU_CALLBACK_AES_KEY", corp["encoding_aes_key"])
    args = add_args(corp, slug=slug)
    for option in ("--agent-secret", "--contact-secret", "--token", "--aes-key"):  # not on the command line
        i = args.index(option)
        del args[i : i + 2]
    code, out = invoke(*args)
    assert code == 0 and f"/wecom/callback/{slug}" in out and corp["agent_secret"] not in out


def test_a_key_that_opens_some_tenants_only_warns_and_tenant_add_can_repair(siyu, monkeypatch, tmp_path):
    """(On a database of its own: the shared one's tenants are all sealed with the test key.)"""
    invoke, corp = siyu
    monkeypatch.setenv("SIYU_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    never_start(monkeypatch)
    monkeypatch.setenv("SIYU_SECRET_KEY", "key-one")
    assert invoke(*add_args(corp, slug="one"))[0] == 0
    monkeypatch.setenv("SIYU_SECRET_KEY", "key-two")  # the first key lost: connect a corp again
    code, out = invoke(*add_args(corp, slug="two", **{"corp-id": corp["corp_id"] + "b"}), "--no-check")
    assert code == 0 and "does not open the secrets of 1 tenant(s) (one)" in out
    code, out = invoke("tenant", "list")  # one tenant unreadable: said, but the others are served
    assert code == 0 and "does not open the secrets of 1 tenant(s) (one)" in out and "two" in out
    code, out = invoke(*add_args(corp, slug="one"))  # connected again: sealed with this key
    assert code == 0
    code, out = invoke("tenant", "list")
    assert code == 0 and "does not open" not in out
    monkeypatch.setenv("SIYU_SECRET_KEY", "key-three")  # opens none: plainly the wrong key
    code, out = invoke("serve", "--port", "8399")
    assert code == 1 and "does not open the secrets of 2 tenant(s)" in out


def _cli_on(stack, database_url, tmp_path, monkeypatch):
    """`siyu` as an operator runs it beside a running server: the same database and key."""
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SIYU_DATABASE_URL", database_url)
    monkeypatch.setenv("SIYU_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("SIYU_PUBLIC_URL", stack.siyu)
    monkeypatch.setenv("SIYU_WECOM_BASE_URL", stack.emulator)
    monkeypatch.setenv("SIYU_AUTO_MIGRATE", "false")

    def invoke(*args: str):
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(app, list(args), catch_exceptions=False)
        finally:
            get_settings.cache_clear()
        return result.exit_code, result.output

    return invoke


def test_a_replaced_archive_callback_pair_needs_no_restart_of_the_running_server(
    stack, database_url, tmp_path, monkeypatch
):
    stack.enable_archive()
    invoke = _cli_on(stack, database_url, tmp_path, monkeypatch)
    code, out = invoke("tenant", "archive-callback", stack.slug, "--replace")
    assert code == 0, out
    token = out.split("Token: ", 1)[1].split()[0]
    aes_key = out.split("EncodingAESKey: ", 1)[1].split()[0]
    # pasted into WeCom's form, which checks the URL at once: the running server answers it
    stack.control(
        "PATCH", stack.corp_path(""), json={"archive_token": token, "archive_encoding_aes_key": aes_key}
    )
    check = stack.control("POST", stack.corp_path("/archive/verify_callback"))
    assert check["ok"], check
    # so the operator is not sent to restart it (the callbacks it would miss meanwhile)
    assert "restart" not in out, out


def test_person_add_takes_only_a_staff_member_siyu_knows(stack, database_url, tmp_path, monkeypatch):
    from sqlalchemy import select

    from siyu.tenancy.models import Person
    from siyu.tenancy.tasks import sync_staff

    asyncio.run(sync_staff(stack.rt, stack.tenant_id))
    invoke = _cli_on(stack, database_url, tmp_path, monkeypatch)
    base = ["person", "add", "--tenant", stack.slug, "--role", "agent", "--password", "pw-123456"]
    login = f"typo-{stack.slug}"
    code, out = invoke(*base, "--login", login, "--name", "张三", "--staff-userid", "zhangsna")
    assert code == 1 and "zhangsna" in out and "siyu sync staff" in out, out
    # WeCom's userids are case-insensitive: ZhangSan is zhangsan, whose customers they see
    login = f"case-{stack.slug}"
    code, out = invoke(*base, "--login", login, "--name", "张三", "--staff-userid", "ZhangSan")
    assert code == 0, out
    with stack.session() as s:
        assert s.scalar(select(Person.staff_userid).where(Person.login == login)) == "zhangsan"


def test_logins_are_managed_from_the_command_line(stack, database_url, tmp_path, monkeypatch):
    """`person add` names the role (it had made an admin of anyone added without one);
    `person list / set-role / reset-password / disable / enable` manage a login after."""
    from datetime import timedelta

    from sqlalchemy import select

    from siyu.db import utcnow
    from siyu.tenancy import service as tenancy
    from siyu.tenancy.models import Person, WebSession

    invoke = _cli_on(stack, database_url, tmp_path, monkeypatch)
    first, second = f"boss-{stack.slug}", f"clerk-{stack.slug}"
    add = ["person", "add", "--tenant", stack.slug, "--password", "pw-123456"]
    code, out = invoke(*add, "--login", second, "--name", "文员")
    assert code == 2 and "--role" in out, out
    # a name of a zero-width space and the Braille blank alone, refused as the page refuses it
    code, out = invoke(*add, "--login", second, "--name", "\u200b\u2800", "--role", "agent")
    assert code == 1 and "invisible" in out, out
    assert invoke(*add, "--login", first, "--name", "老板", "--role", "admin")[0] == 0
    assert invoke(*add, "--login", second, "--name", "文员", "--role", "agent")[0] == 0
    code, out = invoke("person", "list", "--tenant", stack.slug)
    assert code == 0 and f"{first}  admin  active" in out and f"{second}  agent  active" in out, out
    code, out = invoke("person", "set-role", second, "--tenant", stack.slug, "--role", "supervisor")
    assert code == 0 and "supervisor" in out, out
    with stack.rt.db.system_session() as s:
        clerk = s.scalar(select(Person).where(Person.login == second))
        assert clerk.role == "supervisor"
    with stack.rt.db.tenant_session(stack.tenant_id) as s:  # signed in somewhere
        later = utcnow() + timedelta(days=1)
        s.add(WebSession(token_hash=uuid.uuid4().hex, person_id=clerk.id, csrf_token="x", expires_at=later))
    reset = ["person", "reset-password", second, "--tenant", stack.slug, "--password"]
    code, out = invoke(*reset, "short")
    assert code == 1 and "at least 8" in out, out
    assert invoke(*reset, "new-pass-456")[0] == 0
    with stack.rt.db.system_session() as s:
        clerk = s.get(Person, clerk.id)
        assert tenancy.check_password(clerk, "new-pass-456")
        assert not tenancy.check_password(clerk, "pw-123456")
        assert s.scalar(select(WebSession.id).where(WebSession.person_id == clerk.id)) is None
    assert invoke("person", "disable", second, "--tenant", stack.slug)[0] == 0
    code, out = invoke("person", "list", "--tenant", stack.slug)
    assert f"{second}  supervisor  disabled" in out, out
    assert invoke("person", "enable", second, "--tenant", stack.slug)[0] == 0
    assert f"{second}  supervisor  active" in invoke("person", "list", "--tenant", stack.slug)[1]
    # the tenant's last admin who may sign in stays one
    with stack.rt.db.tenant_session(stack.tenant_id) as s:
        others = select(Person).where(
            Person.role == "admin", Person.login != first, Person.disabled_at.is_(None)
        )
        kept = []
        for p in s.scalars(others):
            p.disabled_at = utcnow()
            kept.append(p.id)
    try:
        for args in (("set-role", first, "--role", "agent"), ("disable", first)):
            code, out = invoke("person", *args, "--tenant", stack.slug)
            assert code == 1 and "唯一可以登录的管理员" in out, out
    finally:
        with stack.rt.db.tenant_session(stack.tenant_id) as s:
            for person_id in kept:
                s.get(Person, person_id).disabled_at = None
    code, out = invoke("person", "disable", "nobody", "--tenant", stack.slug)
    assert code == 1 and "no login 'nobody'" in out, out


def test_api_tokens_from_the_command_line(stack, database_url, tmp_path, monkeypatch):
    """`siyu token add` prints the secret alone (TOKEN=$(siyu token add ...)); `list` never
    shows it; `revoke` stops it."""
    from siyu.tenancy import api_tokens
    from siyu.tenancy.tasks import sync_staff

    asyncio.run(sync_staff(stack.rt, stack.tenant_id))
    invoke = _cli_on(stack, database_url, tmp_path, monkeypatch)
    base = ["token", "add", "--tenant", stack.slug, "--name", "CRM sync"]
    code, out = invoke(*base)
    assert code == 1 and "--login or --staff-userid" in out, out
    code, out = invoke(*base, "--staff-userid", "zhangsna")
    assert code == 1 and "siyu sync staff" in out, out
    for days in ("3654", "99999999999"):  # beyond ten years; beyond what a date can hold
        code, out = invoke(*base, "--staff-userid", "zhangsan", "--expires-days", days)
        assert code == 1 and "at most 10 years" in out, out
    code, out = invoke(*base, "--staff-userid", "zhangsan", "--expires-days", "30")
    assert code == 0, out
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("siyu_") and len(secret) == 45, out
    # named by the userid given, in add and list alike, not by the login made (slug/zhangsan)
    assert "(zhangsan, agent)" in out and f"{stack.slug}/" not in out, out
    with stack.rt.db.system_session() as s:
        used = api_tokens.use(s, secret)
    assert used is not None and used.tenant_id == stack.tenant_id
    code, out = invoke("token", "list", "--tenant", stack.slug)
    assert code == 0 and "CRM sync" in out and secret[:11] in out and secret not in out, out
    assert "active" in out and "(zhangsan, agent)" in out and f"{stack.slug}/" not in out, out
    code, out = invoke("token", "revoke", str(used.token_id), "--tenant", stack.slug)
    assert code == 0 and "revoked" in out, out
    with stack.rt.db.system_session() as s:
        assert api_tokens.use(s, secret) is None
    code, out = invoke("token", "revoke", "999999999", "--tenant", stack.slug)
    assert code == 1 and "no token" in out, out
    # the operator may name any person, an admin too (a page's admin may not name another)
    ops = ["--login", f"ops-{stack.slug}", "--name", "运维", "--role", "admin", "--password", "pw-123456"]
    code, out = invoke("person", "add", "--tenant", stack.slug, *ops)
    assert code == 0, out
    code, out = invoke(*base, "--login", f"ops-{stack.slug}")
    assert code == 0 and f"(ops-{stack.slug}, admin)" in out, out


def test_token_add_for_a_member_who_left_says_they_left(stack, database_url, tmp_path, monkeypatch):
    """It had said 找不到这个账号 / no such person, as if the userid were mistyped; the page
    and the API say 已离职或停用."""
    from siyu.tenancy.tasks import sync_staff

    asyncio.run(sync_staff(stack.rt, stack.tenant_id))
    stack.control("DELETE", stack.corp_path("/staff/wangwu"))  # leaves, with no sign-in made
    asyncio.run(sync_staff(stack.rt, stack.tenant_id))
    invoke = _cli_on(stack, database_url, tmp_path, monkeypatch)
    code, out = invoke("token", "add", "--tenant", stack.slug, "--name", "CRM", "--staff-userid", "wangwu")
    assert code == 1 and "王五 已离职或停用 / 王五 has left the company" in out, out
    assert "找不到" not in out, out


def test_python_dash_m_siyu_is_the_siyu_command():
    """Where the `siyu` script is not on PATH (a venv not activated), `python -m siyu` is it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "siyu", "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: siyu" in done.stdout and "needs-reply" in done.stdout


def test_the_demo_console_shows_what_wecom_received():
    """The demo's escalations reach staff as WeCom app messages and calls, which nothing in the
    demo showed: its console now prints each one as the emulator receives it, once, a card with
    the page it opens (without the sign-in through WeCom around it), so that whoever watches
    can open it."""
    from siyu.demo import DEPARTMENTS as DEMO_DEPARTMENTS
    from siyu.demo import STAFF as DEMO_STAFF
    from siyu.demo import Received

    with serve(create_emulator_app()) as url, httpx.Client(base_url=url, timeout=10) as emu:
        corp = emu.post(
            "/_emulator/corps",
            json={"name": "示例科技", "departments": DEMO_DEPARTMENTS, "staff": DEMO_STAFF},
        ).json()
        token = emu.get(
            "/cgi-bin/gettoken", params={"corpid": corp["corp_id"], "corpsecret": corp["agent_secret"]}
        ).json()["access_token"]
        card = {
            "touser": "lisi",
            "msgtype": "textcard",
            "agentid": corp["agent_id"],
            "textcard": {
                "title": "小美的客户 肖姐 已等待 5 分钟 未回复",
                "description": "[图片]",
                "url": "http://127.0.0.1:8000/auth/wecom/demo?next=/conversations%3Fwaiting%3D1%26card%3D7&card=7",
            },
        }
        link = "http://127.0.0.1:8000/conversations?waiting=1&card=7"
        assert (
            emu.post("/cgi-bin/message/send", params={"access_token": token}, json=card).json()["errcode"]
            == 0
        )
        text = "您有1位客户在等待回复，最长已等10分钟，请尽快处理"
        call = {"called_number": "+8613800000003", "template_params": ["1", "10"], "text": text}
        assert emu.post("/_emulator/voice/calls", json=call).status_code == 201

        async def look() -> list[str]:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                return await received.lines(http)

        received = Received(corp["corp_id"])
        first = asyncio.run(look())
        assert [line.split(" ", 1)[1] for line in first] == [
            f"企业微信 → 李四：小美的客户 肖姐 已等待 5 分钟 未回复  {link}",
            f"语音电话 → 小美：{text}",
        ]
        assert asyncio.run(look()) == []  # each once
        # a card sent again after its answer was lost: WeCom's duplicate check keeps it off the phone
        checked = {**card, "enable_duplicate_check": 1}
        for _ in range(2):
            emu.post("/cgi-bin/message/send", params={"access_token": token}, json=checked)
        assert [line.split(" ", 1)[1] for line in asyncio.run(look())] == [
            f"企业微信 → 李四：小美的客户 肖姐 已等待 5 分钟 未回复  {link}",
            "企业微信 → 李四：小美的客户 肖姐 已等待 5 分钟 未回复（与先前一条相同，企业微信查重后未再送达）",
        ]


def test_the_demos_banner_says_when_calls_ring():
    """Calls keep to the default quiet hours, 21:00-08:00 in the company's zone: a demo started
    in a European afternoon showed cards and never a call, with nothing on its console to say
    why. The banner says so, with the time there now, each line whole (piped to a file, rich
    had cut 'same password' over two lines at 80 columns)."""
    from datetime import UTC, datetime

    from siyu.demo import banner

    def lines(now: datetime) -> list[str]:
        console = Console(file=io.StringIO(), width=80)
        for line in banner("http://127.0.0.1:8000", "http://127.0.0.1:8081", "wwdemo", now):
            console.print(line, soft_wrap=True)
        return console.file.getvalue().splitlines()

    at_night = lines(datetime(2026, 12, 6, 23, 29, tzinfo=UTC))  # 07:29 in Shanghai
    assert any(
        line.endswith("(also lisi = supervisor, zhangsan = agent, same password)") for line in at_night
    )
    assert (
        "  calls (the last step) ring outside quiet hours, 21:00-08:00 Asia/Shanghai, the demo company's"
        " time: 07:29 there now, so the next ring at 08:00" in at_night
    )
    by_day = lines(datetime(2026, 12, 7, 2, 0, tzinfo=UTC))  # 10:00 there
    assert (
        "  calls (the last step) ring outside quiet hours, 21:00-08:00 Asia/Shanghai, the demo company's"
        " time: 10:00 there now" in by_day
    )


def test_the_demo_console_shows_a_loss_alert_as_the_phone_does():
    """A loss alert is a text whose link WeCom shows as its words: the console printed its HTML,
    <a href="…/auth/wecom/demo?next=/customers/8&lost=8">查看客户</a>, sign-in and all. It now
    reads as the phone does, the page the link opens at the end as a card's is."""
    from siyu.demo import Received

    with serve(create_emulator_app()) as url, httpx.Client(base_url=url, timeout=10) as emu:
        corp, _ = _demo_corp(emu)
        token = emu.get(
            "/cgi-bin/gettoken", params={"corpid": corp["corp_id"], "corpsecret": corp["agent_secret"]}
        ).json()["access_token"]
        link = "http://127.0.0.1:8000/auth/wecom/demo?next=/customers/8&lost=8"
        text = (
            f'客户流失提醒：张&amp;三 已将你从联系人中删除（12-07 07:10:51）。<a href="{link}">查看客户</a>'
        )
        alert = {
            "touser": "zhangsan",
            "msgtype": "text",
            "agentid": corp["agent_id"],
            "text": {"content": text},
        }
        assert (
            emu.post("/cgi-bin/message/send", params={"access_token": token}, json=alert).json()["errcode"]
            == 0
        )

        async def look() -> list[str]:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                return await Received(corp["corp_id"]).lines(http)

        assert [line.split(" ", 1)[1] for line in asyncio.run(look())] == [
            "企业微信 → 张三：客户流失提醒：张&三 已将你从联系人中删除（12-07 07:10:51）。查看客户"
            "  http://127.0.0.1:8000/customers/8"
        ]


def test_the_demo_console_stamps_its_lines_in_the_companys_zone_as_it_is_now():
    """An admin sets 设置 → 时区 during the demo: the console says so once and stamps what follows
    in that zone (the stamps had stayed Shanghai's, an hour off the alert's own time in Tokyo,
    and a call placed after Tokyo's quiet hours read as one rung inside them)."""
    from siyu.demo import Received

    with serve(create_emulator_app()) as url, httpx.Client(base_url=url, timeout=10) as emu:
        corp, _ = _demo_corp(emu)
        token = emu.get(
            "/cgi-bin/gettoken", params={"corpid": corp["corp_id"], "corpsecret": corp["agent_secret"]}
        ).json()["access_token"]
        zone = ["Asia/Shanghai"]
        received = Received(corp["corp_id"], lambda: zone[0])

        def alert_and_look(n: int) -> list[str]:
            alert = {
                "touser": "zhangsan",
                "msgtype": "text",
                "agentid": corp["agent_id"],
                "text": {"content": f"提醒{n}"},
            }
            emu.post("/cgi-bin/message/send", params={"access_token": token}, json=alert)

            async def look() -> list[str]:
                async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                    return await received.lines(http)

            return asyncio.run(look())

        [before] = alert_and_look(1)
        zone[0] = "Asia/Tokyo"
        said, after = alert_and_look(2)
        assert said == "时区已改为 Asia/Tokyo：此后的时间，与电话的免打扰时段 21:00-08:00，都按该时区"
        assert after.endswith("企业微信 → 张三：提醒2")
        assert int(after[:2]) == (int(before[:2]) + 1) % 24  # an hour ahead of Shanghai
        assert alert_and_look(3)[0].endswith("提醒3")  # said once


def _demo_corp(emu: httpx.Client) -> tuple[dict, str]:
    """The demo's corp in the emulator, and a 客户联系 token for it."""
    from siyu.demo import DEPARTMENTS as DEMO_DEPARTMENTS
    from siyu.demo import STAFF as DEMO_STAFF

    corp = emu.post(
        "/_emulator/corps", json={"name": "示例科技", "departments": DEMO_DEPARTMENTS, "staff": DEMO_STAFF}
    ).json()
    token = emu.get(
        "/cgi-bin/gettoken", params={"corpid": corp["corp_id"], "corpsecret": corp["contact_secret"]}
    ).json()["access_token"]
    return corp, token


def _contact_way(emu: httpx.Client, token: str, staff: list[str], departments=(), state: str = "") -> str:
    way = {"type": 2, "scene": 2, "user": staff, "party": list(departments), "state": state}
    r = emu.post("/cgi-bin/externalcontact/add_contact_way", params={"access_token": token}, json=way)
    return r.json()["config_id"]


def test_the_demos_first_customers_all_stay_to_be_named():
    """The demo's first wave of customers comes while Siyu's worker is still starting. One who
    left or was deleted in it was gone from WeCom before Siyu fetched them: every demo began with
    two （未命名） customers on the home page and a loss alert about 一位客户（…JF3h）. Now
    everyone in it scans a channel's code and stays."""
    from siyu.demo import CHANNELS as DEMO_CHANNELS
    from siyu.demo import FIRST_WAVE, SEED, first_wave
    from siyu.emulator.world import World

    with serve(create_emulator_app()) as url, httpx.Client(base_url=url, timeout=10) as emu:
        corp, token = _demo_corp(emu)
        config_ids = [
            _contact_way(emu, token, c.get("staff", []), c.get("departments", [])) for c in DEMO_CHANNELS
        ]

        async def wave() -> None:
            world = World(url, corp["corp_id"], seed=SEED, config_ids=config_ids)
            try:
                await first_wave(world)
            finally:
                await world.close()

        asyncio.run(wave())
        customers = emu.get(f"/_emulator/corps/{corp['corp_id']}/customers").json()
        assert len(customers) == FIRST_WAVE


def test_customers_in_the_demo_scan_a_channel_made_during_it_and_not_a_stopped_one():
    """A salesperson trying the demo makes a channel (新建渠道) and stops one (停用): customers
    kept scanning only the four codes the demo began with, so the new one never got a customer
    and a quarter of the scans went to the stopped code (WeCom refused them, unseen)."""
    from siyu.demo import SEED, step
    from siyu.emulator.world import World

    with serve(create_emulator_app()) as url, httpx.Client(base_url=url, timeout=10) as emu:
        corp, token = _demo_corp(emu)
        first = _contact_way(emu, token, ["zhangsan"], state="first")

        async def story() -> None:
            world = World(url, corp["corp_id"], seed=SEED, config_ids=[first], weights={"scan": 1.0})
            http = httpx.AsyncClient(base_url=url, timeout=10)
            try:
                await step(world, http)
                _contact_way(emu, token, ["xiaomei"], state="made-in-the-demo")
                r = emu.post(
                    "/cgi-bin/externalcontact/del_contact_way",
                    params={"access_token": token},
                    json={"config_id": first},
                )
                assert r.json()["errcode"] == 0
                for _ in range(3):
                    await step(world, http)
            finally:
                await http.aclose()
                await world.close()

        asyncio.run(story())
        states = [
            c["follow_info"]["state"] for c in emu.get(f"/_emulator/corps/{corp['corp_id']}/customers").json()
        ]
        assert states == ["first"] + ["made-in-the-demo"] * 3


def test_commands_about_stored_tenants_run_where_there_is_no_database_make_none_and_say_where(
    siyu, monkeypatch, tmp_path
):
    """`cd /tmp/x && siyu tenant list` had made data/siyu.db and a new key, and shown an empty
    table: the operator took their tenants for gone."""
    import sqlite3

    invoke, _ = siyu
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("SIYU_DATA_DIR", str(fresh))
    monkeypatch.delenv("SIYU_DATABASE_URL")
    monkeypatch.delenv("SIYU_SECRET_KEY")
    reads = (
        ("tenant", "list"),
        ("tenant", "show", "acme"),
        ("token", "list", "--tenant", "acme"),
        # and those about a tenant, which had left an empty database behind to say "no tenant"
        ("token", "revoke", "1", "--tenant", "acme"),
        ("token", "add", "--tenant", "acme", "--name", "CRM", "--login", "admin"),
        (
            "person",
            "add",
            "--tenant",
            "acme",
            "--login",
            "x",
            "--name",
            "X",
            "--role",
            "admin",
            "--password",
            "pw-1",
        ),
        ("sync", "staff", "--tenant", "acme"),
        ("archive", "skip", "--tenant", "acme", "--seq", "5"),
    )
    for args in reads:
        code, out = invoke(*args)
        assert code == 1 and len(out.strip().splitlines()) == 1, (args, out)
        assert str(fresh / "siyu.db") in out and "SIYU_DATA_DIR" in out and "SIYU_DATABASE_URL" in out, out
        assert not fresh.exists() or not any(fresh.iterdir()), list(fresh.iterdir())
    # a database with no Siyu tables (an empty file, another program's): said so, left as it was
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    monkeypatch.setenv("SIYU_DATABASE_URL", f"sqlite:///{empty}")
    for args in reads:
        code, out = invoke(*args)
        assert code == 1 and len(out.strip().splitlines()) == 1, (args, out)
        assert f"{empty} (SIYU_DATABASE_URL) has no Siyu tables" in out and "SIYU_DATA_DIR" in out, out
    with sqlite3.connect(empty) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    assert not (fresh / "secret.key").exists()
    # setting up still makes them
    monkeypatch.delenv("SIYU_DATABASE_URL")
    assert invoke("migrate")[0] == 0
    code, out = invoke("tenant", "list")
    assert code == 0 and "slug" in out and (fresh / "siyu.db").exists(), out
    # and the command says where its data lives
    code, out = invoke("--help")
    assert code == 0 and "SIYU_DATA_DIR" in out and "SIYU_DATABASE_URL" in out, out


def test_failed_callback_events_are_listed_and_run_again(stack, database_url, tmp_path, monkeypatch):
    """An event given up (a permission missing for a day) had been seen nowhere: no page or
    command listed it, and nothing ran it again once the admin mended the cause."""

    from sqlalchemy import select

    from siyu.customers.models import Customer
    from tests.support.stack import wait_for

    invoke = _cli_on(stack, database_url, tmp_path, monkeypatch)
    code, out = invoke("events", "failed", "--tenant", stack.slug)
    assert code == 0 and f"no failed callback events in {stack.slug}" in out, out
    ids = stack.given_up_events("wmGivenUp1", "wmGivenUp2")

    code, out = invoke("events", "failed", "--tenant", stack.slug)
    assert code == 0, out
    first = next(line for line in out.splitlines() if line.startswith(f"{ids[0]} "))
    assert stack.slug in first and "change_external_contact/add_external_contact" in first, out
    assert "无权限" in first and "siyu events retry" in out, out
    assert f"{ids[1]} " in invoke("events", "failed")[1]  # every tenant's

    stack.control("DELETE", "/faults")  # the admin grants the permission
    code, out = invoke("events", "retry", str(ids[0]))
    assert code == 0 and "1 callback event(s) queued again" in out, out
    code, out = invoke("events", "retry", str(ids[0]))  # nothing to run again
    assert code == 1 and f"event {ids[0]} is" in out and "not failed" in out, out
    assert invoke("events", "retry", "999999999")[0] == 1
    assert invoke("events", "retry")[0] == 1  # neither an id nor --all-failed
    code, out = invoke("events", "retry", "--all-failed", "--tenant", stack.slug)
    assert code == 0 and "1 callback event(s) queued again" in out, out

    wait_for(lambda: stack.event_statuses(ids) == ["done", "done"])  # the running worker took them up
    with stack.session() as s:
        found = s.scalars(select(Customer.external_userid).where(Customer.external_userid.like("wmGivenUp%")))
        assert sorted(found) == ["wmGivenUp1", "wmGivenUp2"]
    assert "no failed callback events" in invoke("events", "failed", "--tenant", stack.slug)[1]
