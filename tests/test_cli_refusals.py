"""The `siyu` command refusing what an operator gets wrong, in one line and exit status 1 (a
usage error, 2), before anything is written: a key that does not open a tenant's secrets, a
login the page would refuse, names that look like markup, an in-memory database, a port in use."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import get_settings

AES = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456"


def _add_args(name: str, corp_id: str, slug: str) -> list[str]:
    return [
        "tenant", "add", "--name", name, "--corp-id", corp_id, "--agent-id", "1",
        "--agent-secret", "a", "--contact-secret", "c", "--token", "tok", "--aes-key", AES,
        "--slug", slug, "--no-check",
    ]  # fmt: skip


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """`siyu` on a SQLite file of this test's own, migrated, with the tenant `acme`."""
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SIYU_DATABASE_URL", f"sqlite:///{tmp_path / 'siyu.db'}")
    monkeypatch.setenv("SIYU_SECRET_KEY", "key-one")
    monkeypatch.setenv("SIYU_PUBLIC_URL", "https://scrm.example.com")
    monkeypatch.setenv("COLUMNS", "80")  # a terminal's usual width
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str):
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(app, list(args), catch_exceptions=False)
        finally:
            get_settings.cache_clear()

    assert invoke("migrate").exit_code == 0
    done = invoke(*_add_args("Acme", "ww12345678", "acme"))
    assert done.exit_code == 0, done.output
    return invoke


def _one_line_refusal(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


# ------------------------------------------------------------------ the secret key


def test_archive_callback_refuses_a_key_that_does_not_open_that_tenants_secrets(cli, monkeypatch):
    """README: a SIYU_SECRET_KEY that does not open the tenant's secrets is refused, "checked
    before anything is written with it". With a second tenant sealed with the key in use, the
    first tenant's archive callback pair was sealed with the wrong key: once the right key
    was back, `siyu tenant show` (and the archive callback) failed for it."""
    monkeypatch.setenv("SIYU_SECRET_KEY", "key-two")
    assert cli(*_add_args("Two", "ww22222222", "two")).exit_code == 0  # (repairing: allowed, warned)
    refused = cli("tenant", "archive-callback", "acme")
    assert refused.exit_code == 1, refused.output
    monkeypatch.setenv("SIYU_SECRET_KEY", "key-one")
    shown = cli("tenant", "show", "acme")
    assert shown.exit_code == 0, shown.output


# ------------------------------------------------------------------ person add


def test_person_add_refuses_a_password_the_web_and_reset_password_refuse(cli):
    result = cli(
        "person", "add", "--tenant", "acme", "--login", "ops", "--name", "Ops", "--role", "admin",
        "--password", "pw",
    )  # fmt: skip
    assert "8" in _one_line_refusal(result)
    assert "ops" not in cli("person", "list", "--tenant", "acme").stdout


def test_person_add_refuses_a_login_shaped_like_a_wecom_members_own(cli):
    """Logins made for WeCom sign-ins are slug/userid (service.person_for_staff); people.add
    refuses spaces and / for that reason. The command line took `acme/zhangsan`, so zhangsan's
    first WeCom sign-in would fail on the unique login."""
    result = cli(
        "person", "add", "--tenant", "acme", "--login", "acme/zhangsan", "--name", "张三",
        "--role", "agent", "--password", "pw-123456",
    )  # fmt: skip
    _one_line_refusal(result)


def test_a_role_chosen_on_the_command_line_holds_at_wecom_sign_in(cli, tmp_path):
    """person_for_staff: a leader signs in as a supervisor "unless an admin chose their role".
    The operator chose agent with `siyu person add`; WeCom sign-in made them a supervisor."""
    from sqlalchemy import select

    from siyu.db import Database
    from siyu.tenancy.models import Department, Person, Staff, Tenant
    from siyu.tenancy.service import person_for_staff

    db = Database(f"sqlite:///{tmp_path / 'siyu.db'}")
    with db.system_session() as s:
        tenant_id = s.scalar(select(Tenant.id).where(Tenant.slug == "acme"))
    with db.tenant_session(tenant_id) as s:
        s.add(Department(wecom_id=2, name="销售一部", leaders=["lisi"]))
        s.add(Staff(userid="lisi", name="李四", departments=[2]))
    result = cli(
        "person", "add", "--tenant", "acme", "--login", "lisi-agent", "--name", "李四",
        "--role", "agent", "--staff-userid", "lisi", "--password", "pw-123456",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with db.tenant_session(tenant_id) as s:  # lisi signs in through WeCom
        assert person_for_staff(s, s.get(Tenant, tenant_id), "lisi").login == "lisi-agent"
    with db.tenant_session(tenant_id) as s:
        role = s.scalar(select(Person.role).where(Person.login == "lisi-agent"))
    db.dispose()
    assert role == "agent"


# ------------------------------------------------------------------ one line, not a traceback


@pytest.mark.parametrize("slug", ["[/x]", "a" * 200])
def test_an_unknown_tenant_is_one_line_whatever_the_slug(cli, slug):
    _one_line_refusal(cli("tenant", "show", slug))


def test_tenant_add_refusing_a_corp_id_says_so_in_one_line(cli):
    result = cli(*_add_args("Gamma", "ww 1234567", "gamma"))
    _one_line_refusal(result)


@pytest.mark.parametrize(
    "args",
    [
        ("token", "revoke", "99999999999999999999", "--tenant", "acme"),
        ("events", "retry", "99999999999999999999"),
    ],
)
def test_an_id_too_large_is_a_usage_error_not_a_traceback(cli, args):
    result = cli(*args)  # (click's refusal of an argument out of its range: status 2)
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "9223372036854775807" in result.output


def test_token_add_shows_the_secret_whatever_the_tokens_name(cli):
    """The token is stored before the line naming it is printed through rich markup: a name
    with [/...] in it raised MarkupError there, leaving an active token whose secret nobody saw."""
    added = cli(
        "person", "add", "--tenant", "acme", "--login", "ops", "--name", "Ops", "--role", "admin",
        "--password", "pw-123456",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    result = cli("token", "add", "--tenant", "acme", "--name", "ERP [/v2] sync", "--login", "ops")
    assert result.exit_code == 0
    assert result.stdout.strip().startswith("siyu_"), result.stdout
    assert "'ERP [/v2] sync'" in result.stderr


# ------------------------------------------------------------------ a database that keeps nothing


def test_tenant_add_on_an_in_memory_database_does_not_claim_success(cli, monkeypatch):
    """SIYU_DATABASE_URL=sqlite:// (e.g. sqlite:///$UNSET_VARIABLE) is a database that is gone
    when the command ends: `tenant add` printed the callback URL and exit 0, and stored nothing."""
    monkeypatch.setenv("SIYU_DATABASE_URL", "sqlite://")
    result = cli(*_add_args("Beta", "ww87654321", "beta"))
    assert result.exit_code == 1, result.output


# ------------------------------------------------------------------ servers


def test_serve_on_a_port_in_use_exits_with_status_1(tmp_path):
    env = {
        **os.environ,
        "SIYU_DATA_DIR": str(tmp_path),
        "SIYU_SECRET_KEY": "key-one",
        "SIYU_EMBEDDED_WORKER": "false",
    }
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "siyu", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "address already in use" in err.lower() and len(err.strip().splitlines()) == 1, err
    assert proc.returncode == 1, proc.returncode


def test_demo_refuses_one_port_for_both_at_once(tmp_path):
    """`siyu demo --port P --emulator-port P`: the emulator was started on P and the demo
    seeded, then Siyu failed to bind P ("Siyu exited with code 3"), the folder left filled."""
    data = tmp_path / "demo"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "siyu", "demo", "--port", str(port), "--emulator-port", str(port),
         "--data-dir", str(data)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 2)
            proc.wait(timeout=20)
    assert proc.returncode == 1
    assert "--emulator-port" in err, err[-500:]
    assert not data.exists() or not any(data.iterdir())


# ------------------------------------------------------------------ time zones


def test_set_timezone_refuses_this_machines_localtime(cli):
    """`localtime` is no IANA zone: a link to this machine's /etc/localtime, which zoneinfo lists
    when its tz folder has one. Another machine's process (a worker, a server) reads another
    zone or none (tzdata from PyPI has no `localtime`)."""
    from zoneinfo import available_timezones

    if "localtime" not in available_timezones():
        pytest.skip("this machine's zoneinfo has no localtime")
    _one_line_refusal(cli("tenant", "set-timezone", "acme", "localtime"))


@pytest.mark.parametrize("concurrency", ["0", "-1"])
def test_a_worker_running_no_row_at_once_is_refused(cli, concurrency):
    """A worker started with --concurrency 0 ran, and never claimed a callback event or an
    urgent message (a welcome) with its limit of none at once: silently."""
    result = cli("worker", "--concurrency", concurrency)
    assert result.exit_code == 2 and "--concurrency" in result.output, result.output


# ---------------------------------------------------------------- tenant add, data folder, key, nice


def _tenant_add(cli, *extra: str, corp_id: str = "ww87654321", agent_id: str = "1000002", name: str = "Beta"):
    return cli(
        "tenant", "add", "--name", name, "--corp-id", corp_id, "--agent-id", agent_id,
        "--agent-secret", "a", "--contact-secret", "c", "--token", "tok", "--aes-key", AES,
        "--no-check", *extra,
    )  # fmt: skip


@pytest.mark.parametrize("agent_id", ["0", "-5"])
def test_tenant_add_refuses_an_agent_id_that_is_not_positive(cli, agent_id):
    """/setup refuses an AgentId <= 0 ("AgentId 应为数字"); `tenant add` stored it, and every app
    message (SLA pushes) and the OAuth sign-in then went to an app that cannot exist."""
    result = _tenant_add(cli, "--slug", "beta", agent_id=agent_id)
    assert result.exit_code in (1, 2), result.output
    assert "beta" not in cli("tenant", "list").output


def test_tenant_add_with_an_agent_id_too_large_is_one_line_not_a_traceback(cli):
    runner = CliRunner()
    get_settings.cache_clear()
    result = runner.invoke(
        app,
        ["tenant", "add", "--name", "Beta", "--corp-id", "ww87654321", "--agent-id", "99999999999999999999",
         "--agent-secret", "a", "--contact-secret", "c", "--token", "tok", "--aes-key", AES, "--no-check"],
    )  # fmt: skip
    get_settings.cache_clear()
    assert not isinstance(result.exception, OverflowError), repr(result.exception)
    assert result.exit_code in (1, 2), result.output


def test_tenant_add_refuses_a_blank_company_name(cli):
    """`person add` refuses a blank --name, /setup keeps the stored one for a blank field:
    `tenant add --name ' '` stored a corp nobody can tell apart in lists and pages."""
    result = _tenant_add(cli, "--slug", "beta", name="   ")
    assert result.exit_code == 1, result.output
    assert "beta" not in cli("tenant", "list").output


def test_a_data_dir_that_is_a_file_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    """SIYU_DATA_DIR set to a file (or a folder that cannot be made): every command died with
    a FileExistsError traceback from Path.mkdir."""
    afile = tmp_path / "data"
    afile.write_text("not a folder")
    monkeypatch.setenv("SIYU_DATA_DIR", str(afile))
    monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
    monkeypatch.setenv("SIYU_PUBLIC_URL", "https://scrm.example.com")
    monkeypatch.chdir(tmp_path)
    for args in (["migrate"], ["tenant", "list"]):
        get_settings.cache_clear()
        result = CliRunner().invoke(app, args)
        get_settings.cache_clear()
        assert result.exit_code == 1, (args, result.output)
        assert not isinstance(result.exception, OSError), (args, repr(result.exception))
        assert "SIYU_DATA_DIR" in result.output, (args, result.output)


def test_events_retry_of_another_tenants_event_does_not_say_failed_is_not_failed(cli, tmp_path):
    from siyu.db import Database
    from siyu.intake.models import CallbackEvent

    assert _tenant_add(cli, "--slug", "beta").exit_code == 0
    db = Database(f"sqlite:///{tmp_path / 'siyu.db'}")
    from sqlalchemy import select

    from siyu.tenancy.models import Tenant

    with db.system_session() as s:
        acme = s.scalar(select(Tenant.id).where(Tenant.slug == "acme"))
        event = CallbackEvent(
            tenant_id=acme, digest="d" * 64, kind="change_external_contact/add_external_contact",
            xml="<xml/>", status="failed", attempts=30, last_error="60011 无权限",
        )  # fmt: skip
        s.add(event)
        s.flush()
        event_id = event.id
    assert f"{event_id}  " in cli("events", "failed", "--tenant", "acme").output
    result = cli("events", "retry", str(event_id), "--tenant", "beta")
    assert result.exit_code == 1, result.output
    assert "is failed, not failed" not in result.output, result.output


@pytest.mark.skipif(
    not shutil.which("setpriv") or os.geteuid() != 0, reason="needs setpriv, as root, to drop CAP_SYS_NICE"
)
def test_worker_with_a_negative_nice_is_one_line_not_a_traceback(tmp_path):
    """`--nice` 'lowers this process's CPU priority by this much': a negative value (raising
    it), run by anyone but root, died with a PermissionError traceback."""
    env = {**os.environ, "SIYU_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}
    env.pop("SIYU_DATABASE_URL", None)
    done = subprocess.run(
        ["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice",
         sys.executable, "-m", "siyu", "worker", "--nice", "-5"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode in (1, 2), done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "PermissionError" not in done.stderr, done.stderr[-2000:]


def test_an_empty_secret_key_file_is_not_used_as_the_key(tmp_path, monkeypatch):
    """data/secret.key left empty (a full disk when it was written, a `touch`): the key became
    "" and the tenants' WeCom secrets were sealed with sha256(""), which anyone can open."""
    from sqlalchemy import select

    from siyu.db import Database
    from siyu.tenancy.models import Tenant

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret.key").write_text("")
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
    monkeypatch.delenv("SIYU_SECRET_KEY", raising=False)
    monkeypatch.setenv("SIYU_PUBLIC_URL", "https://scrm.example.com")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    result = CliRunner().invoke(
        app,
        ["tenant", "add", "--name", "Acme", "--corp-id", "ww12345678", "--agent-id", "1000002",
         "--agent-secret", "the-agent-secret", "--contact-secret", "c", "--token", "tok", "--aes-key", AES,
         "--slug", "acme", "--no-check"],
    )  # fmt: skip
    get_settings.cache_clear()
    assert result.exit_code == 1 and "secret.key is empty" in result.output, result.output
    if (tmp_path / "data" / "siyu.db").exists():  # nothing sealed with the empty key
        with Database(f"sqlite:///{tmp_path / 'data' / 'siyu.db'}").system_session() as s:
            assert s.scalar(select(Tenant.id).where(Tenant.slug == "acme")) is None
