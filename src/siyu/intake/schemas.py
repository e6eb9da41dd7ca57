"""Response shapes of the callback events API (/api/v1/events)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from siyu.web.api_paging import ListPage


class FailedEventOut(BaseModel):
    id: int
    received_at: datetime = Field(description="when WeCom delivered it")
    kind: str = Field(
        description="WeCom's Event/ChangeType, e.g. change_external_contact/add_external_contact"
    )
    kind_name: str = Field(description="the kind in Chinese words, e.g. 客户添加; else `kind` itself")
    attempts: int = Field(description="tries made in the last round")
    last_error: str = Field(description="why the last try failed")
    external_userid: str | None = Field(description="the customer it concerns, where the event names one")
    customer_id: int | None = Field(description="that customer's id in Siyu, if Siyu has them")
    customer_name: str | None
    staff_userid: str | None = Field(description="the member it concerns, where the event names one")
    staff_name: str | None
    chat_id: str | None = Field(description="the customer group it concerns, where the event names one")
    group_name: str | None


class FailedEventPage(ListPage):
    items: list[FailedEventOut] = Field(description="newest first")


class Queued(BaseModel):
    queued: int = Field(description="how many failed events were queued again (the worker runs them now)")
