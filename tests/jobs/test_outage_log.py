"""What the operator reads in the log of an outage: one error when it begins, one warning when
the database answers again, whatever order the loops' threads come back in."""

from __future__ import annotations

import logging
import time

from siyu.db.outage import Outage


def test_an_answer_to_a_call_begun_before_the_outage_does_not_end_it(caplog):
    outage = Outage(
        logging.getLogger("siyu.test.outage"), "down: {what}", "back after {down_s:.0f} s", any_error=True
    )
    caplog.set_level(logging.WARNING, "siyu.test.outage")
    asked_before = time.monotonic()  # a claim sent just before the database went silent
    outage.failed(RuntimeError("connection timed out"), "claiming work")
    outage.answered(asked_before)  # ...whose thread came back late: not a sign the database is back
    outage.failed(RuntimeError("connection timed out"), "claiming work")
    assert [r.getMessage() for r in caplog.records] == ["down: claiming work"]

    outage.answered(time.monotonic())  # a call begun during the outage got through: it is over
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"]
    assert caplog.records[-1].getMessage().startswith("back after")


def test_a_failure_of_a_call_begun_before_the_outage_ended_does_not_begin_another(caplog):
    outage = Outage(
        logging.getLogger("siyu.test.outage"), "down: {what}", "back after {down_s:.0f} s", any_error=True
    )
    caplog.set_level(logging.WARNING, "siyu.test.outage")
    outage.failed(RuntimeError("connection timed out"), "tidying")
    asked_during = time.monotonic()  # a connect sent into the silence...
    outage.answered(time.monotonic())  # ...while another loop, asking later, got through
    outage.failed(RuntimeError("connection timeout expired"), "claiming work", asked_during)
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"]

    outage.failed(RuntimeError("connection timed out"), "claiming work", time.monotonic())  # down again
    assert [r.getMessage() for r in caplog.records][-1] == "down: claiming work"
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING", "ERROR"]
