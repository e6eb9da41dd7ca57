"""SLA: response-time policies and the escalation engine (DESIGN.md flow 3).

Importing this package registers the conversations wait listener (siyu.sla.service) and
the outbox senders `sla_notice` and `sla_call` (siyu.sla.tasks): every process that
ingests messages or runs the worker must import it."""

from siyu.sla import service, tasks  # noqa: F401 - registers the listener and the senders
