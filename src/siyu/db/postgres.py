"""How Siyu's connections to PostgreSQL (psycopg 3) find out that the server is gone.

A server that vanishes without a word (host powered off, network cut: packets dropped, no
RST) had left whoever waited on it - a worker loop, a web request - waiting forever, and a
stuck statement held its locks as long. Now:
- TCP keepalives and tcp_user_timeout end a connection whose peer answers nothing, not even
  TCP, within `dead_peer_s`; connect_timeout bounds opening one;
- the server cancels a statement after `statement_s` and ends a session idle inside a
  transaction after `idle_in_transaction_s`, so their locks go;
- a query with no answer for `statement_s + dead_peer_s` fails here: the server would have
  cancelled it by then, so what is silent is in between (a proxy or pooler that stays up,
  and so keeps TCP alive, while the server behind it is gone);
- once the process is stopping (`Patience.stop`), every wait, a connect's too, ends as soon
  as the server has said nothing on any connection for STOPPING_SILENCE_S since the stop: a
  worker stopped during an outage had waited the limits above out (80 s by default, near
  systemd's 90 s before it kills), its threads blocked in calls that no stop reaches. What
  they did not commit is claimed again once its lease is over.
"""

from __future__ import annotations

import math
import time

import psycopg
from psycopg.waiting import Ready

from siyu.config import DatabaseTimeouts

KEEPALIVE_PROBES = 3


def connect_args(timeouts: DatabaseTimeouts, given: set[str]) -> dict:
    """libpq parameters for these timeouts, leaving out those the URL sets itself (`given`)."""
    args: dict = {}
    if timeouts.connect_s:
        args["connect_timeout"] = max(2, math.ceil(timeouts.connect_s))  # libpq's least is 2
    if dead := timeouts.dead_peer_s:
        # silent for half of it, then probes spread over the other half
        args |= {
            "keepalives": 1,
            "keepalives_idle": max(1, round(dead / 2)),
            "keepalives_interval": max(1, round(dead / 2 / KEEPALIVE_PROBES)),
            "keepalives_count": KEEPALIVE_PROBES,
            "tcp_user_timeout": math.ceil(dead * 1000),  # data sent and never acknowledged
        }
    return {key: value for key, value in args.items() if key not in given}


def connector(patience: Patience):
    """SQLAlchemy's `do_connect` hook: psycopg's connect, with a connection that gives up on a
    server that does not answer, as `patience` says."""
    connection = type("AnswerOrGiveUp", (AnswerOrGiveUp,), {"patience": patience})

    def do_connect(_dialect, _record, cargs, cparams):
        return connection.connect(*cargs, **cparams)

    return do_connect


def session_settings(timeouts: DatabaseTimeouts):
    """SQLAlchemy's `connect` hook: the server-side limits, set once per connection (not as
    startup `options`, which PgBouncer refuses by default)."""

    def on_connect(conn, _record) -> None:
        conn.execute(
            "SELECT set_config('statement_timeout', %s, false),"
            " set_config('idle_in_transaction_session_timeout', %s, false)",
            (f"{round(timeouts.statement_s * 1000)}ms", f"{round(timeouts.idle_in_transaction_s * 1000)}ms"),
        )
        conn.commit()

    return on_connect


# Once the process is stopping: how long a server that has sent nothing, on any connection,
# since the stop or since it last did, is still waited on. A healthy server talks on some
# connection far more often; one silent this long is gone for as long as a stop may take.
STOPPING_SILENCE_S = 3.0


class Patience:
    """How long one engine's connections wait on a server that sends nothing: a query
    `answer_s` (None: no limit), and anything, connects too, once the process is stopping, as
    long as the server was heard from in the last STOPPING_SILENCE_S."""

    def __init__(self, timeouts: DatabaseTimeouts):
        self.answer_s = timeouts.statement_s + timeouts.dead_peer_s if timeouts.statement_s else None
        self.heard = time.monotonic()  # the last byte from the server, on any connection
        self.stopping_since: float | None = None

    def stop(self) -> None:
        # once: the embedded worker is told twice (its pipe closes and SIGTERM comes), and a
        # later telling had made the waits on a silent server start their seconds again
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()

    def given_up(self, answer_s: float | None, silent_since: float, now: float) -> str | None:
        """Why a wait silent since `silent_since` ends now, if it does."""
        if answer_s is not None and now - silent_since > answer_s:
            return f"PostgreSQL did not answer for {answer_s:g} s"
        if (
            self.stopping_since is not None
            and now - max(self.heard, self.stopping_since) > STOPPING_SILENCE_S
        ):
            return f"PostgreSQL did not answer for {STOPPING_SILENCE_S:g} s while Siyu stops"
        return None


class NoAnswer(Exception):
    pass


class AnswerOrGiveUp(psycopg.Connection):
    """A connection whose every wait on the server (a query, a commit, a ping) ends as its
    `patience` says: the connection is closed (it is mid-exchange, of no further use;
    SQLAlchemy then drops it from its pool) and OperationalError says why. Connecting is held
    to connect_timeout, and ends the same way once the process is stopping."""

    patience: Patience  # set on the class `connector` makes for one engine

    def wait(self, gen, *args, **kw):
        try:
            return super().wait(_until_silent(gen, self.patience, self.patience.answer_s), *args, **kw)
        except NoAnswer as why:
            self.close()
            raise psycopg.OperationalError(
                f"{why}: the connection is given up (the server, or the network to it, is down)"
            ) from None

    @classmethod
    def _connect_gen(cls, *args, **kw):
        return _connecting(super()._connect_gen(*args, **kw), cls.patience)


def _connecting(gen, patience: Patience):
    try:
        return (yield from _until_silent(gen, patience, None))
    except NoAnswer as why:
        gen.close()  # (its half-made connection with it)
        raise psycopg.OperationalError(f"{why}: connecting is given up") from None


def _until_silent(gen, patience: Patience, answer_s: float | None):
    """Pass `gen`'s waits through; psycopg's wait functions tell it every 0.1 s that nothing
    came (Ready.NONE), and NoAnswer ends it once `patience` gives up."""
    last = time.monotonic()
    try:
        waiting = next(gen)
        while True:
            ready = yield waiting
            now = time.monotonic()
            if ready:
                last = now
                if ready & Ready.R:  # (a socket ready to be written to says nothing of the server)
                    patience.heard = now
            elif why := patience.given_up(answer_s, last, now):
                raise NoAnswer(why)
            waiting = gen.send(ready)
    except StopIteration as done:
        return done.value
