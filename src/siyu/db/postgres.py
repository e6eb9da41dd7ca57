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
  and so keeps TCP alive, while the server behind it is gone).
"""

from __future__ import annotations

import math
import time

import psycopg

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


def connector(timeouts: DatabaseTimeouts):
    """SQLAlchemy's `do_connect` hook: psycopg's connect, with a connection that gives up on a
    query PostgreSQL does not answer, when statements have a limit."""
    answer_s = timeouts.statement_s + timeouts.dead_peer_s if timeouts.statement_s else None

    def do_connect(_dialect, _record, cargs, cparams):
        if answer_s is None:
            return None  # SQLAlchemy's own connect
        conn = AnswerOrGiveUp.connect(*cargs, **cparams)
        conn.answer_s = answer_s
        return conn

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


class NoAnswer(Exception):
    pass


class AnswerOrGiveUp(psycopg.Connection):
    """A connection whose every wait on the server (a query, a commit, a ping) ends after
    `answer_s` without a byte from it: the connection is closed (it is mid-exchange, of no
    further use; SQLAlchemy then drops it from its pool) and OperationalError says why."""

    answer_s: float | None = None

    def wait(self, gen, *args, **kw):
        if self.answer_s is None:
            return super().wait(gen, *args, **kw)
        try:
            return super().wait(_until_silent_for(gen, self.answer_s), *args, **kw)
        except NoAnswer:
            self.close()
            raise psycopg.OperationalError(
                f"PostgreSQL did not answer for {self.answer_s:g} s: the connection is given up"
                " (the server, or the network to it, is down)"
            ) from None


def _until_silent_for(gen, seconds: float):
    """Pass `gen`'s waits through; psycopg's wait functions tell it every 0.1 s that nothing
    came (Ready.NONE), and after `seconds` of only that, give up."""
    last = time.monotonic()
    try:
        waiting = next(gen)
        while True:
            ready = yield waiting
            if ready:
                last = time.monotonic()
            elif time.monotonic() - last > seconds:
                raise NoAnswer
            waiting = gen.send(ready)
    except StopIteration as done:
        return done.value
