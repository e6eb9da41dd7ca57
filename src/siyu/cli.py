"""The `siyu` command."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import getpass
import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:  # imported where used: `siyu --help` stays quick
    from siyu.runtime import Runtime

app = typer.Typer(
    help="Siyu (私域): the open-source SCRM for WeCom.\n\n"
    "Its data lives in SIYU_DATA_DIR (default: the folder data under the current one), which holds"
    " the SQLite file siyu.db and the key file secret.key, unless SIYU_DATABASE_URL names another"
    " database (PostgreSQL) and SIYU_SECRET_KEY gives the key; these are read from the environment"
    " or a .env file in the current folder.",
    no_args_is_help=True,
)
tenant_app = typer.Typer(help="Connect and inspect WeCom corps (tenants).", no_args_is_help=True)
person_app = typer.Typer(help="People who log in to the web UI.", no_args_is_help=True)
sync_app = typer.Typer(help="Pull data from WeCom.", no_args_is_help=True)
archive_app = typer.Typer(help="The conversation archive (会话存档).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for integrations (Authorization: Bearer).", no_args_is_help=True)
events_app = typer.Typer(
    help="Callback events WeCom sent (customers added, groups, archive notices).", no_args_is_help=True
)
app.add_typer(tenant_app, name="tenant")
app.add_typer(person_app, name="person")
app.add_typer(sync_app, name="sync")
app.add_typer(archive_app, name="archive")
app.add_typer(token_app, name="token")
app.add_typer(events_app, name="events")
# No markup: what is printed holds names people typed ([prod], [/x]), which rich had read as
# styles (dropped from the line) or refused with a traceback after the command had done its work
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)
P = ParamSpec("P")
R = TypeVar("R")


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per WeCom call is too much
    # loggers kept to warnings: the demo's console keeps alembic's lines of each schema check out
    for name in filter(None, os.environ.get("SIYU_QUIET_LOGGERS", "").split(",")):
        logging.getLogger(name.strip()).setLevel(logging.WARNING)


def _runtime(repairing: bool = False, serving: bool = False, existing: bool = False):
    """The runtime, once the database and the secret key are fit to run on: a server or a
    worker started without them would take up rows only to fail on each. A key that opens
    none of the tenants' secrets is refused; one that opens some is only warned about (the
    others can be connected again with `tenant add`, which `repairing` lets through).
    `serving`: a server or worker, whose statements are held to
    SIYU_DATABASE_STATEMENT_TIMEOUT_S; a command a person runs (a sync, an import) has its
    statements take what they take, the person watching it. `existing`: a command about a
    tenant already stored (showing, syncing, a token, a login), which makes no database and no
    key: run where there is none, it would show an empty one (the operator taking their tenants
    for gone), or leave an empty one behind to say "no tenant"."""
    from siyu.config import get_settings
    from siyu.db import Database
    from siyu.runtime import Runtime
    from siyu.tenancy.service import sealed_elsewhere

    settings = get_settings()
    _kept_somewhere(settings)
    key_file = settings.key_file
    key_is_new = not settings.secret_key and not key_file.exists()
    timeouts = settings.database_timeouts if serving else settings.database_timeouts.unhurried()
    if existing:
        _existing_database(settings)
    rt = Runtime.create(settings, Database(settings.sqlalchemy_url, timeouts))
    if existing and key_is_new:  # the key in memory opens nothing stored: not left to be taken for one
        key_file.unlink(missing_ok=True)
    if existing and rt.db.schema_revisions()[0] is None:
        _fail(f"{_database_named(settings)} has no Siyu tables: {_POINT_ELSEWHERE}")
    if settings.auto_migrate:
        rt.db.migrate()
    else:
        current, head = rt.db.schema_revisions()  # (SchemaAhead is a ValueError: said in one line)
        if current is None:
            _fail("the database has no Siyu tables yet: run `siyu migrate` (SIYU_AUTO_MIGRATE is off)")
        if current != head:
            _fail(f"the database schema is at {current}, this Siyu needs {head}: run `siyu migrate`")
    with rt.db.system_session() as s:
        others, sealed = sealed_elsewhere(s, rt.box)
    if others:
        where = "use the key they were sealed with"
        if not settings.secret_key:
            key = (
                f"a new key made in {key_file.resolve()}"
                if key_is_new
                else f"the key in {key_file.resolve()}"
            )
            where = f"it is unset, and {key} is not theirs: run from the folder that holds theirs, or set it"
        named = ", ".join(others[:5]) + (", …" if len(others) > 5 else "")
        problem = f"SIYU_SECRET_KEY does not open the secrets of {len(others)} tenant(s) ({named})"
        if len(others) == sealed and not repairing:
            if key_is_new:  # made by this run: not left behind to be taken for theirs
                key_file.unlink(missing_ok=True)
            _fail(f"{problem}: {where}")
        err_console.print(
            f"{problem}: they cannot be served until connected again (`siyu tenant add`)",
            style="yellow",
            soft_wrap=True,
        )
    return rt


_POINT_ELSEWHERE = (
    "set SIYU_DATA_DIR (the folder of siyu.db and secret.key) or SIYU_DATABASE_URL to where Siyu's"
    " data is (`siyu migrate` makes a new database there)"
)


def _database_named(settings) -> str:
    from sqlalchemy.engine import make_url

    if not settings.database_url:
        return f"the database {(settings.data_dir / 'siyu.db').resolve()} (SIYU_DATA_DIR)"
    url = make_url(settings.database_url)  # (not a URL: an ArgumentError, told by clear_errors)
    return f"the database {url.render_as_string(hide_password=True)} (SIYU_DATABASE_URL)"


def _kept_somewhere(settings) -> None:
    """Exits when SIYU_DATABASE_URL names an in-memory SQLite database (sqlite://, or
    sqlite:///$UNSET): a command said it was done, and nothing was kept."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.sqlalchemy_url)  # (not a URL: an ArgumentError, told by clear_errors)
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        _fail("SIYU_DATABASE_URL names an in-memory SQLite database, which keeps nothing: name a file")


def _existing_database(settings) -> None:
    """Exits naming the SQLite file looked for when it is not there: opening it would make it."""
    from sqlalchemy.engine import make_url

    if settings.database_url:
        url = make_url(settings.database_url)
        path = url.database if url.get_backend_name() == "sqlite" else None
    else:
        path = str(settings.data_dir / "siyu.db")
    if path and path != ":memory:" and not path.startswith("file:") and not Path(path).exists():
        _fail(f"no Siyu database: {_database_named(settings)} does not exist; {_POINT_ELSEWHERE}")


def _tenant_id(rt, slug: str) -> int:
    """The tenant's id; exits with a one-line reason when there is no such tenant (`_runtime`
    has checked that the key opens its secrets)."""
    from sqlalchemy import select

    from siyu.tenancy.models import Tenant

    with rt.db.system_session() as s:
        tenant_id = s.scalar(select(Tenant.id).where(Tenant.slug == slug))
    if tenant_id is None:
        _fail(f"no tenant {slug!r}; `siyu tenant list` shows them")
    return tenant_id


def _opening_its_secrets(rt, tenant_id: int, slug: str) -> None:
    """Exits when the key does not open this tenant's secrets, before a command seals more with
    it (`_runtime` stops only where it opens no tenant's: sealed with the wrong key, the new ones
    broke the tenant once the right key was back)."""
    from siyu.tenancy.models import Tenant
    from siyu.tenancy.service import opens

    with rt.db.system_session() as s:
        if not opens(rt.box, s.get(Tenant, tenant_id)):
            _fail(f"SIYU_SECRET_KEY does not open {slug}'s secrets: use the key they were sealed with")


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(1)


def clear_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A command's known failures as one line and exit status 1, not a traceback: a database
    URL that does not work, a database never migrated, WeCom unreachable or refusing, and
    Siyu's own ValueErrors (their messages are written for people)."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        from pydantic import ValidationError
        from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

        from siyu.web.templating import wecom_message
        from siyu.wecom.errors import WeComFailure

        try:
            return command(*args, **kwargs)
        except (ArgumentError, NoSuchModuleError) as exc:
            _fail(f"SIYU_DATABASE_URL is not a database URL Siyu can use: {exc}")
        except ModuleNotFoundError as exc:
            _fail(f"no driver for SIYU_DATABASE_URL's database: {exc}")
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
            hint = "; run `siyu migrate`" if _missing_table(reason) else "; check SIYU_DATABASE_URL"
            _fail(f"the database refused: {reason}{hint}")
        except WeComFailure as exc:
            _fail(f"WeCom: {wecom_message(exc)}")
        except ValidationError as exc:  # a setting from the environment: its own words, one line
            _fail("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors()))
        except ValueError as exc:
            _fail(str(exc))

    return run


def _missing_table(reason: str) -> bool:
    return "no such table" in reason or ("relation" in reason and "does not exist" in reason)


@app.command()
@clear_errors
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="port for the web UI, API and WeCom callbacks")
    ] = 8000,
    access_log: Annotated[bool, typer.Option(help="log every request (costly at callback rates)")] = False,
) -> None:
    """Run Siyu: web UI, JSON API, the WeCom callback URL and (embedded default) the worker."""
    import uvicorn

    from siyu.app import create_app

    _logging()
    try:  # (uvicorn says it among its log lines and exits 3, after the app and its worker started)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET  # (as uvicorn picks it)
        socket.create_server((host, port), family=family).close()
    except OSError as exc:
        why = exc.strerror or str(exc)
        _fail(f"cannot listen on {host}:{port}: {why}; choose another --port or --host")
    rt = _runtime(serving=True)  # the database and the key checked (and migrated) before anything starts
    if warning := rt.settings.public_url_warning():
        logging.getLogger("siyu").warning(warning)
    uvicorn.run(create_app(rt.settings, rt), host=host, port=port, log_level="info", access_log=access_log)


@app.command()
@clear_errors
def worker(
    concurrency: Annotated[
        int, typer.Option(min=1, help="rows of one company run at once (a quarter more for the others)")
    ] = 32,
    wake_fd: Annotated[int | None, typer.Option(hidden=True, help="pipe from `siyu serve`")] = None,
    nice: Annotated[
        int, typer.Option(min=0, max=19, help="lower this process's CPU priority by this much")
    ] = 0,
) -> None:
    """Run a worker without the web server (PostgreSQL deployments run any number of these)."""
    from siyu.jobs.child import watch_wake_pipe
    from siyu.jobs.worker import Worker, settle_collector

    _logging()
    if nice:
        os.nice(nice)
    rt = _runtime(serving=True)
    settle_collector()
    where = rt.settings.sqlalchemy_url.split("@")[-1]
    logging.getLogger("siyu").info(
        "worker started: %d rows of a company at once, database %s", concurrency, where
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        running = Worker(rt, concurrency=concurrency, scheduled=True)

        def stop(*_signal) -> None:
            # A wait on a database gone silent ends within seconds, not at its limits (80 s by
            # default), whether in a loop's thread or in the event loop itself (work that reads
            # in it): so the signal is taken by Python's own handler, which runs in this thread
            # while the event loop is stuck, and not by the event loop's, which ran only after.
            rt.db.stopping()
            with contextlib.suppress(RuntimeError):  # (a signal once the event loop is closed)
                loop.call_soon_threadsafe(running.stop)

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stop)
        if wake_fd is not None:
            watch_wake_pipe(loop, wake_fd, rt, stop)
        try:
            await running.run()
        finally:
            await rt.clients.aclose()

    asyncio.run(main())


@app.command()
@clear_errors
def migrate(
    new: Annotated[
        str | None, typer.Option(help="developers: write a new migration with this message")
    ] = None,
) -> None:
    """Apply database migrations (run once per deploy when several processes share PostgreSQL)."""
    import siyu.models  # noqa: F401 - every table, for autogenerate
    from siyu.config import get_settings
    from siyu.db import Database

    settings = get_settings()
    _kept_somewhere(settings)
    db = Database(settings.sqlalchemy_url, settings.database_timeouts)  # (migrate lifts the limits)
    before, after = db.migrate()
    if new:
        db.new_migration(new)
        return
    where = settings.sqlalchemy_url.split("@")[-1]
    if before == after:
        console.print(f"schema is up to date on {where} ({after})")
    else:
        console.print(f"schema migrated from {before or 'nothing'} to {after} on {where}")


@app.command()
def emulator(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port of the emulated WeCom API")] = 8081,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Run the WeCom emulator: WeCom's server API, callbacks and a control API under /_emulator/."""
    from siyu.emulator.app import main

    main(host=host, port=port, log_level=log_level)


@app.command()
def demo(
    port: Annotated[int, typer.Option(min=1, max=65535, help="port of the web UI")] = 8000,
    emulator_port: Annotated[int, typer.Option(min=1, max=65535, help="port of the WeCom emulator")] = 8081,
    data_dir: Annotated[
        str,
        typer.Option(
            help="where the demo keeps its SQLite file; emptied at each start, so a new or empty"
            " folder, or an earlier demo's"
        ),
    ] = "data/demo",
) -> None:
    """Siyu on SQLite with the WeCom emulator and a simulated world of customers, in one go."""
    from siyu.demo import run_demo

    run_demo(port=port, emulator_port=emulator_port, data_dir=data_dir)


@app.command("needs-reply")
def needs_reply(batch_size: Annotated[int, typer.Option(help="messages classified per batch")] = 512) -> None:
    """Classify customer messages: JSON lines {"text", "context"} on stdin (context = the staff
    message being answered), one {"label": "needs_reply" | "closing", "score"} line out each."""
    import sys

    from siyu.insights.needs_reply import lines_as_they_come, run_cli

    # UTF-8 whatever the locale, and strictly, a line at a time (so a refusal names the line):
    # GBK bytes are refused, not classified as garbage
    if sys.stdin is None or sys.stdout is None:  # (run with <&- or >&-)
        typer.echo("needs-reply reads standard input and writes standard output: one is closed", err=True)
        raise typer.Exit(1)
    try:
        run_cli(lines_as_they_come(sys.stdin.buffer), sys.stdout, batch_size=batch_size)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    except BrokenPipeError:
        raise  # (the reader stopped, `| head`: click leaves quietly)
    except OSError as exc:  # a full disk, a closed descriptor: one line, not a traceback
        typer.echo(f"needs-reply cannot read its input or write its output: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from exc


# ---------------------------------------------------------------- tenants


def _secret(help_: str, envvar: str, prompt: str):
    """A secret's option: from the command line, else the environment, else asked for unseen
    (an option stays in the shell's history and shows in `ps`)."""
    return typer.Option(help=help_, envvar=envvar, prompt=prompt, hide_input=True)


@tenant_app.command("add")
@clear_errors
def tenant_add(
    name: Annotated[str, typer.Option(help="company name shown in Siyu")],
    corp_id: Annotated[str, typer.Option(help="企业ID, under 我的企业 → 企业信息")],
    agent_id: Annotated[int, typer.Option(min=1, max=2**31 - 1, help="the self-built app's AgentId")],
    agent_secret: Annotated[str, _secret("the self-built app's Secret", "SIYU_AGENT_SECRET", "应用 Secret")],
    contact_secret: Annotated[
        str, _secret("客户联系 → API → Secret", "SIYU_CONTACT_SECRET", "客户联系 Secret")
    ],
    token: Annotated[str, _secret("callback Token (接收事件服务器)", "SIYU_CALLBACK_TOKEN", "Token")],
    aes_key: Annotated[
        str, _secret("callback EncodingAESKey (43 characters)", "SIYU_CALLBACK_AES_KEY", "EncodingAESKey")
    ],
    slug: Annotated[str | None, typer.Option(help="short name used in the callback URL")] = None,
    check: Annotated[bool, typer.Option(help="check the secrets by fetching tokens from WeCom")] = True,
) -> None:
    """Connect a WeCom corp: check its credentials and print the callback URL to paste into WeCom."""
    import re

    from sqlalchemy import select

    from siyu.tenancy import service
    from siyu.tenancy.models import Tenant
    from siyu.visible_names import tidy_name

    name = " ".join(name.split())  # (one line: lists and pages show it)
    if not tidy_name(name):
        _fail("--name must not be blank: the company's name shows on every page")
    if len(name) > 200:
        _fail("--name is over 200 characters")
    if slug is not None and not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?", slug):
        _fail(f"--slug goes into the callback URL: 1-40 lower-case letters, digits and -, not {slug!r}")
    rt = _runtime(repairing=True)  # connecting a corp again seals its secrets with this key
    creds = service.CorpCredentials(corp_id, agent_id, agent_secret, contact_secret, token, aes_key)
    try:
        if check:
            asyncio.run(service.check_credentials(creds, rt.settings.wecom_base_url))
        elif creds.problems():
            raise service.ConnectError("; ".join(creds.problems()))
    except service.ConnectError as exc:
        said = "WeCom refused the credentials" if check else "the credentials are not valid"
        _fail(f"{said}: {exc}")
    with rt.db.system_session() as s:
        before = s.scalar(select(Tenant.slug).where(Tenant.corp_id == creds.corp_id))
        if before is None and slug and s.scalar(select(Tenant.corp_id).where(Tenant.slug == slug)):
            _fail(f"--slug {slug} is already another corp's (see `siyu tenant list`): choose another")
        tenant = service.save_tenant(s, rt.box, name, creds, slug)
        summary = service.tenant_summary(
            tenant,
            rt.box,
            rt.settings.callback_url(tenant.slug),
            rt.settings.archive_callback_url(tenant.slug),
        )
    if before is not None:
        kept = f" (its slug stays {before}: WeCom calls that URL)" if slug and slug != before else ""
        console.print(
            f"This corp was already connected as {before}: its settings are updated{kept}.", style="yellow"
        )
    _print_summary(summary)
    console.print(f"callback URL: {summary['callback_url']}", soft_wrap=True)
    console.print("Paste it, the Token and the EncodingAESKey into WeCom's admin console (客户联系 → API).")
    _warn_public_url(rt)


def _warn_public_url(rt) -> None:
    if warning := rt.settings.public_url_warning():
        err_console.print(warning, style="yellow", soft_wrap=True)


def _print_summary(summary: dict) -> None:
    from rich.table import Table

    table = Table(show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in summary.items():
        table.add_row(key, str(value))
    console.print(table)


@tenant_app.command("list")
@clear_errors
def tenant_list() -> None:
    """List connected corps."""
    from rich.table import Table
    from sqlalchemy import select

    from siyu.tenancy.models import Tenant

    rt = _runtime(existing=True)
    table = Table("slug", "name", "corp id", "callback URL")
    table.columns[3].overflow = "fold"  # whole, over several lines, rather than cut with …
    with rt.db.system_session() as s:
        for t in s.scalars(select(Tenant).order_by(Tenant.id)):
            table.add_row(t.slug, t.name, t.corp_id, rt.settings.callback_url(t.slug))
    console.print(table)


@tenant_app.command("show")
@clear_errors
def tenant_show(slug: str) -> None:
    """Show one corp's settings, secrets masked."""
    from siyu.tenancy import service, setting_changes, timezones
    from siyu.tenancy.models import Tenant

    rt = _runtime(existing=True)
    tenant_id = _tenant_id(rt, slug)
    with rt.db.tenant_session(tenant_id) as s:
        summary = service.tenant_summary(
            s.get(Tenant, tenant_id),
            rt.box,
            rt.settings.callback_url(slug),
            rt.settings.archive_callback_url(slug),
        )
        changed = setting_changes.last(s)
    for setting, c in changed.items():  # who changed it and when, in the corp's zone
        what = f"{c['old']} → {c['new']}, " if setting == "timezone" else ""
        summary[f"{setting}_changed"] = f"{what}{c['by']} {timezones.local_now(summary['timezone'], c['at'])}"
    _print_summary(summary)
    _warn_public_url(rt)


@tenant_app.command("set-timezone")
@clear_errors
def tenant_set_timezone(
    slug: str, zone: Annotated[str, typer.Argument(help="an IANA name: Asia/Singapore, Europe/Berlin")]
) -> None:
    """Set the corp's time zone: the days, business hours and times of its board, home page and
    customer list (Asia/Shanghai until set)."""
    from siyu.sla import service
    from siyu.tenancy import setting_changes, timezones

    rt = _runtime(existing=True)
    tenant_id = _tenant_id(rt, slug)
    now = rt.now()
    try:
        with rt.db.tenant_session(tenant_id) as s:
            moved = service.change_timezone(s, zone, now, setting_changes.COMMAND_LINE)
    except ValueError as exc:
        _fail(str(exc))
    zone = zone.strip()
    console.print(f"{slug}: time zone {zone}, {timezones.local_now(zone, now)} there now", soft_wrap=True)
    if moved:
        console.print(f"{moved} pending SLA step(s) rescheduled to the business hours in {zone}")


@tenant_app.command("archive-callback")
@clear_errors
def tenant_archive_callback(
    slug: str,
    token: Annotated[str, typer.Option(help="the 会话存档 app's callback Token (blank: generate)")] = "",
    aes_key: Annotated[
        str, typer.Option(help="the 会话存档 app's callback EncodingAESKey (blank: generate)")
    ] = "",
    replace: Annotated[
        bool, typer.Option(help="generate a new pair although the tenant has one (WeCom then needs it too)")
    ] = False,
) -> None:
    """Set the 会话存档 app's own callback Token and EncodingAESKey (or generate both) and print
    what to paste into WeCom (管理工具 → 会话内容存档 → 接收事件服务器)."""
    from siyu.tenancy import service
    from siyu.tenancy.models import Tenant

    rt = _runtime(existing=True)
    tenant_id = _tenant_id(rt, slug)
    _opening_its_secrets(rt, tenant_id, slug)
    with rt.db.system_session() as s:
        if not (token or aes_key or replace) and service.has_archive_callback(s.get(Tenant, tenant_id)):
            _fail(
                f"{slug} has an archive callback pair already (`siyu tenant show {slug}`), which WeCom may"
                " be using: --replace makes a new one, to be pasted into WeCom at once"
            )
        try:
            token, aes_key = service.save_archive_callback(
                s, rt.box, s.get(Tenant, tenant_id), token, aes_key
            )
        except ValueError as exc:
            _fail(str(exc))
    console.print(f"archive callback URL: {rt.settings.archive_callback_url(slug)}", soft_wrap=True)
    console.print(f"Token: {token}", soft_wrap=True)
    console.print(f"EncodingAESKey: {aes_key}", soft_wrap=True)
    console.print(
        "Paste the three into WeCom's 会话内容存档 接收事件服务器 form now: running `siyu serve`"
        " processes answer with this pair at once (WeCom checks the URL when you save) and accept"
        " the old one for at most a minute more.",
        soft_wrap=True,
    )


# ---------------------------------------------------------------- people


@person_app.command("add")
@clear_errors
def person_add(
    tenant: Annotated[str, typer.Option(help="tenant slug")],
    login: Annotated[str, typer.Option(help="login name (unique)")],
    name: Annotated[str, typer.Option(help="display name")],
    role: Annotated[str, typer.Option(help="admin | supervisor | agent")],
    staff_userid: Annotated[str | None, typer.Option(help="their WeCom userid, if staff")] = None,
    password: Annotated[str | None, typer.Option(help="password (asked for when left out)")] = None,
) -> None:
    """Create a login for the web UI."""
    from sqlalchemy import select

    from siyu.tenancy import people, service, setting_changes
    from siyu.tenancy.models import Person

    login, name = login.strip(), name.strip()
    if not login or not name:
        _fail("--login and --name must not be blank")
    if not people.named(name):  # as the page and the API refuse it: a login no list tells apart
        _fail("--name is only spaces and invisible characters: give a name that shows")
    if role not in service.ROLES:
        _fail(f"--role must be admin, supervisor or agent, not {role!r}")
    rt = _runtime(existing=True)
    tenant_id = _tenant_id(rt, tenant)
    with rt.db.system_session() as s:
        if s.scalar(select(Person.id).where(Person.login == login)) is not None:
            _fail(f"login {login!r} is taken (logins are unique across all tenants): choose another")
        if alike := service.login_spelt_alike(s, login):
            _fail(
                f"login {login!r} differs from {alike!r} only by case, which sign-in ignores: choose another"
            )
    if staff_userid:
        staff_userid = _known_staff(rt, tenant_id, tenant, staff_userid.strip())
    password = password or getpass.getpass("password: ")
    if not password and not staff_userid:  # staff may sign in through WeCom instead
        _fail("a password is needed for a login that is not a staff member's (--staff-userid)")
    with rt.db.tenant_session(tenant_id) as s:
        # asked again, holding the logins to the commit: one alike may have been made meanwhile
        if alike := service.login_spelt_alike(s, login):
            _fail(
                f"login {login!r} differs from {alike!r} only by case, which sign-in ignores: choose another"
            )
        # (the page's and the API's checks: a short password, a login shaped like a WeCom member's
        # own, tenant/userid; the role kept at their WeCom sign-in, as an admin's choice)
        people.add(s, login, name, role, password or None, staff_userid, by=setting_changes.COMMAND_LINE)
    console.print(f"{login} can now log in as {role}")


@person_app.command("list")
@clear_errors
def person_list(tenant: Annotated[str, typer.Option(help="tenant slug")]) -> None:
    """The tenant's logins, one a line: role, WeCom userid, newest sign-in (UTC), and whether
    they have left the company or are disabled."""
    from siyu.tenancy import people

    rt = _runtime(existing=True)
    tenant_id = _tenant_id(rt, tenant)
    with rt.db.tenant_session(tenant_id) as s:
        rows = people.listed(s)
    for p in rows:
        state = "disabled" if p["disabled_at"] else "active"
        if not p["disabled_at"] and p["left"]:  # (a member WeCom disabled is not said to have left)
            state = {"已离职": "left", "已禁用": "disabled_in_wecom"}.get(
                p["gone"], "left_or_disabled_in_wecom"
            )
        signed_in = f"{p['signed_in_at']:%Y-%m-%d %H:%M}" if p["signed_in_at"] else "not signed in"
        typer.echo(
            f"{p['login']}  {p['role']}  {state}  {p['display_name']!r}"
            f" (WeCom {p['staff_userid'] or '-'}); {signed_in}"
        )
    if not rows:
        typer.echo(f"no logins in {tenant}: `siyu person add` makes one")


def _login(tenant: str, login: str) -> tuple[Runtime, int, int]:
    """What a command on one login needs: the runtime, the tenant's id and the login's id; exits
    with a one-line reason when there is no such tenant or login."""
    from sqlalchemy import select

    from siyu.tenancy.models import Person

    rt = _runtime(existing=True)
    tenant_id = _tenant_id(rt, tenant)
    with rt.db.tenant_session(tenant_id) as s:
        person_id = s.scalar(select(Person.id).where(Person.login == login.strip()))
    if person_id is None:
        _fail(f"no login {login!r} in {tenant}; `siyu person list --tenant {tenant}` shows them")
    return rt, tenant_id, person_id


@person_app.command("set-role")
@clear_errors
def person_set_role(
    login: Annotated[str, typer.Argument(help="their login")],
    tenant: Annotated[str, typer.Option(help="tenant slug")],
    role: Annotated[str, typer.Option(help="admin | supervisor | agent")],
) -> None:
    """Change a login's role: it holds from their next request, signed in or by a token."""
    from siyu.tenancy import people

    rt, tenant_id, person_id = _login(tenant, login)
    with rt.db.tenant_session(tenant_id) as s:
        people.set_role(s, person_id, role)
    console.print(f"{login} is now {role}")


@person_app.command("reset-password")
@clear_errors
def person_reset_password(
    login: Annotated[str, typer.Argument(help="their login")],
    tenant: Annotated[str, typer.Option(help="tenant slug")],
    password: Annotated[str | None, typer.Option(help="the new password (asked for when left out)")] = None,
) -> None:
    """Give a login a new password; it is signed out everywhere."""
    from siyu.tenancy import people

    rt, tenant_id, person_id = _login(tenant, login)
    password = password or getpass.getpass("new password: ")
    with rt.db.tenant_session(tenant_id) as s:
        people.reset_password(s, person_id, password)
    console.print(f"{login} has a new password and is signed out everywhere")


@person_app.command("disable")
@clear_errors
def person_disable(
    login: Annotated[str, typer.Argument(help="their login")],
    tenant: Annotated[str, typer.Option(help="tenant slug")],
) -> None:
    """End a login: signed out everywhere, refused (its API tokens too) until enabled."""
    from siyu.tenancy import people

    rt, tenant_id, person_id = _login(tenant, login)
    with rt.db.tenant_session(tenant_id) as s:
        people.disable(s, person_id)
    console.print(f"{login} is disabled and signed out everywhere")


@person_app.command("enable")
@clear_errors
def person_enable(
    login: Annotated[str, typer.Argument(help="their login")],
    tenant: Annotated[str, typer.Option(help="tenant slug")],
) -> None:
    """Let a disabled login sign in again."""
    from siyu.tenancy import people

    rt, tenant_id, person_id = _login(tenant, login)
    with rt.db.tenant_session(tenant_id) as s:
        people.enable(s, person_id)
    console.print(f"{login} may sign in again")


def _known_staff(rt, tenant_id: int, slug: str, userid: str) -> str:
    """The staff member's userid as synced from WeCom (which takes userids in any case); exits
    with a one-line reason for one Siyu does not know: such a login would see no customers."""
    from sqlalchemy import func, select

    from siyu.tenancy.models import Staff
    from siyu.tenancy.queries import member_userid

    with rt.db.tenant_session(tenant_id) as s:
        found = member_userid(s, userid)
        synced = s.scalar(select(func.count(Staff.id)))
    if found is not None:
        return found
    _fail(
        f"--staff-userid {userid!r} is not a member of {slug} that Siyu knows ({synced} synced): check"
        f" the userid in WeCom's 通讯录, and run `siyu sync staff --tenant {slug}` if they joined since"
    )


# ---------------------------------------------------------------- API tokens


@token_app.command("add")
@clear_errors
def token_add(
    tenant: Annotated[str, typer.Option(help="tenant slug")],
    name: Annotated[str, typer.Option(help="what it is for, e.g. 'CRM sync'")],
    login: Annotated[str | None, typer.Option(help="the login of the person it acts as")] = None,
    staff_userid: Annotated[
        str | None, typer.Option(help="or the WeCom userid of the staff member it acts as")
    ] = None,
    expires_days: Annotated[
        int | None, typer.Option(help="days until it stops working, at most 3653 (default: never)")
    ] = None,
) -> None:
    """Make an API token acting as a person (their role and scope). The secret is printed
    once, alone on standard output: TOKEN=$(siyu token add ...)."""
    from sqlalchemy import select

    from siyu.tenancy import api_tokens
    from siyu.tenancy.models import Person

    if (login is None) == (staff_userid is None):
        _fail("name whom the token acts as: --login or --staff-userid (one of them)")
    if expires_days is not None and expires_days < 1:
        _fail("--expires-days must be 1 or more (leave it out for a token that does not expire)")
    expires_at = api_tokens.expires_in(expires_days)
    rt = _runtime(existing=True)
    tenant_id = _tenant_id(rt, tenant)
    if staff_userid is not None:
        choice = f"s:{_known_staff(rt, tenant_id, tenant, staff_userid.strip())}"
    with rt.db.tenant_session(tenant_id) as s:
        if login is not None:
            person_id = s.scalar(select(Person.id).where(Person.login == login.strip()))
            if person_id is None:
                _fail(f"no login {login!r} in {tenant}")
            choice = f"p:{person_id}"
        # the operator may name anyone, an admin too: the command line has the database's rights
        acting = api_tokens.acting_person(s, tenant_id, choice, made_by=None)
        token, secret = api_tokens.create(s, name, acting, None, expires_at)
        who = f"{acting.display_name} ({api_tokens.handle(acting)}, {acting.role})"
        token_id = token.id
    err_console.print(
        f"token {token_id} {name!r} acts as {who}; the secret, shown this once:", soft_wrap=True
    )
    typer.echo(secret)


@token_app.command("list")
@clear_errors
def token_list(tenant: Annotated[str, typer.Option(help="tenant slug")]) -> None:
    """The tenant's tokens, newest first, one a line (never their secrets; times in UTC)."""
    from siyu.tenancy import api_tokens

    def when(at) -> str:
        return f"{at:%Y-%m-%d %H:%M}" if at else "never"

    rt = _runtime(existing=True)
    tenant_id = _tenant_id(rt, tenant)
    with rt.db.tenant_session(tenant_id) as s:
        tokens = api_tokens.described(s, api_tokens.listed(s))
    for t in tokens:  # lines, not a table: a table cut the prefix and the names with … at 80 columns
        typer.echo(
            f"{t['id']}  {t['prefix']}…  {t['status']}  {t['name']!r} acts as {t['acts_as']['display_name']}"
            f" ({api_tokens.handle(t['acts_as'])}, {t['acts_as']['role']}); created {when(t['created_at'])},"
            f" last used {when(t['last_used_at'])}, expires {when(t['expires_at'])}"
        )
    if not tokens:
        typer.echo(f"no tokens in {tenant}: `siyu token add` makes one")


@token_app.command("revoke")
@clear_errors
def token_revoke(
    token_id: Annotated[
        int, typer.Argument(min=1, max=2**63 - 1, help="the token's id, as `siyu token list` shows it")
    ],
    tenant: Annotated[str, typer.Option(help="tenant slug")],
) -> None:
    """Stop a token from working, at once (it stays listed)."""
    from siyu.tenancy import api_tokens

    rt = _runtime(existing=True)
    tenant_id = _tenant_id(rt, tenant)
    with rt.db.tenant_session(tenant_id) as s:
        token = api_tokens.revoke(s, token_id)
        if token is None:
            _fail(f"no token {token_id} in {tenant}; `siyu token list --tenant {tenant}` shows them")
        name = token.name
    console.print(f"token {token_id} {name!r} revoked: calls with it are refused (401)")


# ---------------------------------------------------------------- sync


@sync_app.command("staff")
@clear_errors
def sync_staff(tenant: Annotated[str, typer.Option(help="tenant slug")]) -> None:
    """Mirror WeCom's departments and members."""
    from siyu.tenancy.tasks import sync_staff as run

    rt = _runtime(existing=True)
    counts = _run(rt, run(rt, _tenant_id(rt, tenant)))
    console.print(f"synced {counts['departments']} departments and {counts['staff']} staff")


@sync_app.command("customers")
@clear_errors
def sync_customers(tenant: Annotated[str, typer.Option(help="tenant slug")]) -> None:
    """Import every existing customer of every staff member; safe to re-run."""
    from siyu.customers.sync import sync_customers as run

    rt = _runtime(existing=True)
    tenant_id = _tenant_id(rt, tenant)
    with _progress("customers") as progress:
        task = progress.add_task("sync", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None)

        counts = _run(rt, run(rt, tenant_id, report))
    console.print(f"{counts['relations']} customer relations of {counts['staff']} staff; {counts['new']} new")


@archive_app.command("import")
@clear_errors
def archive_import(
    path: Annotated[Path, typer.Argument(help="JSON lines, one decrypted archive message a line")],
    tenant: Annotated[str, typer.Option(help="tenant slug")],
) -> None:
    """Import already-decrypted archive messages (a migration); safe to re-run. The file is
    checked first: a bad line is named and nothing is stored."""
    from siyu.conversations.tasks import ImportStopped, import_file

    rt = _runtime(existing=True)
    tenant_id = _tenant_id(rt, tenant)
    with _progress("messages") as progress:
        task = progress.add_task("import", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            counts = _run(rt, import_file(rt, tenant_id, path, report))
        except (ValueError, OSError) as exc:
            progress.stop()
            typer.echo(f"nothing imported: {exc}", err=True)
            raise typer.Exit(1) from exc
        except ImportStopped as exc:
            progress.stop()
            _fail(f"import stopped: {exc}")
    console.print(f"{counts['stored']} messages stored; {counts['duplicates']} stored before")


@archive_app.command("skip")
@clear_errors
def archive_skip(
    tenant: Annotated[str, typer.Option(help="tenant slug")],
    seq: Annotated[int, typer.Option(help="the seq the pull is stuck at, as its error names it")],
) -> None:
    """Give up one archived message the pull cannot get past (it cannot be decrypted, e.g.
    its key pair is lost), so that the messages after it are pulled before WeCom drops them.
    Only the seq the last error names is taken; that message is not stored."""
    from siyu.conversations.tasks import NotStuckThere, skip_stuck

    rt = _runtime(existing=True)
    try:
        stuck = skip_stuck(rt, _tenant_id(rt, tenant), seq)
    except NotStuckThere as exc:
        typer.echo(f"nothing skipped: {exc}", err=True)
        raise typer.Exit(1) from exc
    console.print(f"seq {seq} skipped; the next pull goes on after it. It had failed with: {stuck}")


# ---------------------------------------------------------------- events


@events_app.command("failed")
@clear_errors
def events_failed(
    tenant: Annotated[str | None, typer.Option(help="tenant slug; every tenant's without it")] = None,
) -> None:
    """Callback events given up after their tries, newest first, one a line: id, when it was
    received (UTC), tenant, event type, tries and why the last failed."""
    from siyu.intake.service import failed_events

    limit = 500
    rt = _runtime(existing=True)
    tenant_id = _tenant_id(rt, tenant) if tenant else None
    with rt.db.system_session() as s:
        rows = [
            f"{e.id}  {e.received_at:%Y-%m-%d %H:%M}  {slug}  {e.kind}  tried {e.attempts}×:"
            f" {' '.join(e.last_error.split())}"  # one line each, whatever the error said
            for e, slug in failed_events(s, tenant_id, limit)
        ]
    for line in rows:
        typer.echo(line)
    if len(rows) == limit:
        typer.echo(f"(the newest {limit} shown)")
    if rows:
        typer.echo("mend the cause, then `siyu events retry ID` (or --all-failed) runs them again")
    else:
        typer.echo("no failed callback events" + (f" in {tenant}" if tenant else ""))


@events_app.command("retry")
@clear_errors
def events_retry(
    event_id: Annotated[
        int | None,
        typer.Argument(min=1, max=2**63 - 1, help="the event's id, as `siyu events failed` shows it"),
    ] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="every failed event")] = False,
    tenant: Annotated[str | None, typer.Option(help="with --all-failed: only this tenant's")] = None,
) -> None:
    """Run failed callback events again (once what made them fail is mended): the worker
    takes them up at once, with a fresh round of tries."""
    from siyu.intake.service import NotFailed, retry_failed

    if (event_id is None) == (not all_failed):
        _fail("name one event ID or give --all-failed (`siyu events failed` lists them)")
    rt = _runtime(existing=True)
    tenant_id = _tenant_id(rt, tenant) if tenant else None
    try:
        with rt.db.system_session() as s:
            count = retry_failed(s, event_id, tenant_id)
    except NotFailed as exc:
        _fail(f"nothing queued: {exc}; `siyu events failed` lists the failed ones")
    console.print(f"{count} callback event(s) queued again; a running worker takes them up now")


def _progress(what: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)


def _run(rt, coro):
    async def main():
        try:
            return await coro
        finally:
            await rt.clients.aclose()

    return asyncio.run(main())


if __name__ == "__main__":
    app()
