"""Full-text search of messages, for Chinese: overlapping CJK character bigrams plus words.

Chinese is written without spaces, so a word index of the raw text finds nothing and a
naive LIKE scans every message. Each stored message is tokenized instead into overlapping
bigrams of its CJK runs and its lower-cased latin/digit words, NFKC-normalised first
(full width → half width):

    tokenize("能便宜点吗 iPhone15") == ["能便", "便宜", "宜点", "点吗", "iphone15"]

and kept, space-separated, in `message_search.tokens`: on SQLite by ingest itself; on
PostgreSQL ingest queues a batch's tokens and `index_backlog` indexes them in transactions
of their own, which the archive puller runs on another thread while it stores the next
batch (see `queue`). A pull returns once what it stored is searchable.

A query is tokenized the same way and every token must match (AND); a query word also
matches as a prefix ("iphone" finds "iphone15"). A CJK run of three characters or more is
checked whole with LIKE on the matches too: its bigrams may stand apart in a message (不发货
is not in 今天发货吗，我不发了). A CJK character standing alone has no
bigram, and an emoji no token: each is checked with LIKE on the matched messages, and a query
of nothing but such characters (一个字, 👌) falls back to a LIKE bounded to the newest
`LIKE_SCAN` messages the viewer may read. So does a query of punctuation alone (？, ……), taken
as written and in either width (？ finds ? too).

The index is engine-specific, created by `search_ddl()` / `ensure_search_index()` (called
from the migration, not part of the model metadata):

* PostgreSQL: a GIN index on `to_tsvector('simple', tokens)`; queried with
  `to_tsvector('simple', tokens) @@ to_tsquery('simple', '''能便'' & ''iphone'':*')`.
* SQLite: an FTS5 external-content table `message_search_fts` over `message_search`,
  kept in sync by triggers; queried with `MATCH '"能便" AND "iphone"*'`.

Results are scoped by the tenant session (the message_search rows are TenantOwned) and by
the viewer's visible staff (`siyu.conversations.queries.visible_conversation`), newest
first, each with a snippet around the first match.
"""

from __future__ import annotations

import json
import operator
import re
import unicodedata
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    ForeignKey,
    Index,
    Text,
    UniqueConstraint,
    and_,
    column,
    func,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from siyu.db import bulk
from siyu.db.base import Base, BigId, TenantOwned, utcnow

FTS_TABLE = "message_search_fts"
GIN_INDEX = "ix_message_search_tokens_tsv"
LIKE_SCAN = 5000  # a one-character query looks at most at this many of the newest messages
# the characters of a query looked at: the API and the page take 100 (the page says so when it
# cuts), so every token of a query is looked for, a few hundred at most (33 codes were cut to 32
# and messages lacking the 33rd were found)
MAX_QUERY_CHARS = 200
SNIPPET_BEFORE, SNIPPET_AFTER = 16, 48


class MessageSearch(TenantOwned, Base):
    """The search tokens of one stored message (see module docstring)."""

    __tablename__ = "message_search"
    __table_args__ = (UniqueConstraint("tenant_id", "message_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"))
    tokens: Mapped[str] = mapped_column(Text, default="")


class SearchBacklog(TenantOwned, Base):
    """The search tokens of a stored batch of messages, waiting to be indexed (PostgreSQL,
    see `queue`): JSON, [[message id, tokens], ...]."""

    __tablename__ = "search_backlog"
    __table_args__ = (Index("ix_search_backlog_tenant_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entries: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# ---------------------------------------------------------------- tokenizing

# CJK ideographs (with extensions and compatibility forms), kana and hangul: scripts
# written without spaces between words.
_CJK_CHARS = (
    "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f"
)
_CJK = f"[{_CJK_CHARS}]"
_RUNS = re.compile(f"({_CJK}+)|((?:(?!{_CJK})[^\\W_])+)")
# Emoji and pictographs (👌 🙏 ❤ ☺ ⭐ ✅ ▶ ©), a flag (🇨🇳) as one: not indexed (neither FTS5's
# tokenizer nor PostgreSQL's 'simple' keeps symbols), but a query's are checked with LIKE, as
# a lone CJK character is. Skin tones, variation selectors and joiners are left out.
_EMOJI_CHARS = (
    "\u00a9\u00ae\u2190-\u21ff\u2300-\u23ff\u25a0-\u27bf\u2934\u2935\u2b00-\u2bff\u3030\u303d"
    "\U0001f000-\U0001f1e5\U0001f200-\U0001f3fa\U0001f400-\U0001faff"
)
_QUERY_RUNS = re.compile(
    f"({_CJK}+)|((?:(?!{_CJK})[^\\W_])+)|([\U0001f1e6-\U0001f1ff]{{2}}|[{_EMOJI_CHARS}])"
)


MAX_NUMBER = 40  # digits: longer runs are not numbers anyone types back to look for
# A number's tails are indexed up to its last eight digits (people look up 尾号 4317 or the end of
# an order number): each tail is a token more to store, and ingest paid about 5 % for all of them.
TAIL_DIGITS = 8


# A number written in groups (138-1234-5678, 138 1234 5678, ¥1,299.00): indexed whole as well,
# so that the number typed without its separators finds it (13812345678, 1299).
_SEPARATED_DIGIT = re.compile(r"\d[-, ]\d")  # a cheap look first: most messages have none
# Spaces only in a phone number's three groups: "买 2 送 1", "123 1234" are separate numbers.
_GROUPED = re.compile(  # (after Chinese too: 手机138-1234-5678; not inside a latin word or a decimal)
    r"(?<![0-9A-Za-z.])\d{1,4}(?:[-,]\d{2,8})+(?![\d]|[-,]\d)"
    r"|(?<![0-9A-Za-z.])\d{3,4}(?: \d{3,4}){2}(?![\d]| \d)"
)


_COUNTRY_CODE = re.compile(r"(86|852|853|886)[-, ]\d")  # (a number's first group)


def normalize(text: str) -> str:
    """NFKC (full width → half width, compatibility ideographs → unified) and lower case."""
    return unicodedata.normalize("NFKC", text or "").lower()


def _runs(text: str) -> Iterable[tuple[str, str]]:
    """(run, kind) for each CJK run ("cjk"), latin/digit (or other script) word ("word") and
    emoji ("emoji", one each; a flag's two letters as one)."""
    for m in _QUERY_RUNS.finditer(normalize(text)):
        if m.group(1):
            yield m.group(1), "cjk"
        elif m.group(2):
            yield m.group(2), "word"
        else:
            yield m.group(3), "emoji"


def _bigrams(run: str) -> list[str]:
    # each character joined to the next: in C, about half the time of slicing in a loop
    return list(map(operator.add, run, run[1:])) if len(run) > 1 else [run]


def tokenize(text: str) -> list[str]:
    """Index tokens of a text: CJK bigrams (a lone CJK character as itself) and words; a number
    also by its tails of three to eight digits, so that the last digits of an order or tracking
    number find it (a word matches as a prefix: 20261204123 is found by 2026 and, through its
    tail 1204123, by 1204 and by 123); a number written in groups also whole, with its tails.
    (What _runs and _bigrams do, inlined: ingest tokenizes every message it stores.)"""
    out: list[str] = []
    text = normalize(text)
    for cjk, word in _RUNS.findall(text):
        if not cjk:
            out.append(word)
            if 3 < len(word) <= MAX_NUMBER and word.isdigit():
                out += _tails(word)
        elif len(cjk) > 1:
            out += map(operator.add, cjk, cjk[1:])
        else:
            out.append(cjk)
    if _SEPARATED_DIGIT.search(text):
        have = set(out)  # a last group's tails are there already
        for grouped in _GROUPED.findall(text):
            word = grouped.replace("-", "").replace(",", "").replace(" ", "")
            # +86-138-0446-5678: the mobile number whole as well, typed without its country code
            local = [word[len(cc[1]) :]] if (cc := _COUNTRY_CODE.match(grouped)) else []
            for token in (word, *local, *(_tails(local[0]) if local else ()), *_tails(word)):
                if token not in have:
                    have.add(token)
                    out.append(token)
    return out


def _tails(number: str) -> list[str]:
    """A number's last three to eight digits (not the number itself)."""
    return [number[i:] for i in range(max(1, len(number) - TAIL_DIGITS), len(number) - 2)]


# PostgreSQL refuses a tsvector over 1 MB ("string is too long for tsvector"), and a batch
# that cannot be indexed holds back every batch after it. A message with more tokens than
# MANY_TOKENS (none WeCom sends; an imported one may be) is indexed by its distinct tokens
# until they add up to TOKENS_BUDGET bytes, well inside that limit.
MANY_TOKENS = 20_000
TOKENS_BUDGET = 500_000


def tokens_text(text: str) -> str:
    tokens = tokenize(text)
    if len(tokens) > MANY_TOKENS:
        tokens = _within_budget(tokens)
    return " ".join(tokens)


def _within_budget(tokens: list[str]) -> list[str]:
    kept, size = [], 0
    for token in dict.fromkeys(tokens):
        size += len(token.encode()) + 8  # (a lexeme's entry and one position, about)
        if size > TOKENS_BUDGET:
            break
        kept.append(token)
    return kept


@dataclass
class Query:
    """A search query, tokenized: `exact` CJK bigrams, `prefixes` words matched as prefixes,
    `singles` lone CJK characters and emoji (checked with LIKE), `phrases` CJK runs of three
    characters or more (their bigrams found, checked whole with LIKE), `terms` (to find the
    snippet)."""

    exact: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    singles: list[str] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)

    @property
    def checked(self) -> list[str]:
        """What is looked for in the text itself (LIKE), on what the index matched."""
        return self.singles + self.phrases

    @property
    def indexed(self) -> bool:
        return bool(self.exact or self.prefixes)

    @property
    def empty(self) -> bool:
        return not (self.indexed or self.singles)


def parse_query(q: str) -> Query:
    query = Query()
    for run, kind in _runs(q[:MAX_QUERY_CHARS]):
        query.terms.append(run)
        if kind == "emoji" or (kind == "cjk" and len(run) == 1):
            query.singles.append(run)
        elif kind == "cjk":
            query.exact.extend(_bigrams(run))
            if len(run) > 2:  # two characters are one bigram: the index has them together
                query.phrases.append(run)
        elif len(run) == 1:  # C++, C 盘: as a prefix one letter would match every word it starts
            query.exact.append(run)
        else:
            query.prefixes.append(run)
    query.exact = list(dict.fromkeys(query.exact))
    query.prefixes = list(dict.fromkeys(query.prefixes))
    query.singles = list(dict.fromkeys(query.singles))
    query.phrases = list(dict.fromkeys(query.phrases))
    # control and format characters (NUL, zero-width joiners) are no punctuation anyone looks for:
    # PostgreSQL refuses a NUL in a parameter, and SQLite's LIKE stops at one (matching everything)
    printable = "".join(c for c in q[:MAX_QUERY_CHARS] if c.isspace() or unicodedata.category(c)[0] != "C")
    if query.empty and (literal := " ".join(printable.split())):
        # punctuation or symbols only (？, ……, ~_~): looked for as written, in either width
        query.singles = [literal]
        query.terms = list(widths(literal))
    return query


# The full-width signs (￠ ￡ ￢ ￣ ￤ ￥ ￦) by what NFKC makes of them: ¥ typed finds ￥ written
_FULL_SIGNS = {unicodedata.normalize("NFKC", chr(c)): chr(c) for c in range(0xFFE0, 0xFFE7)}


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else _FULL_SIGNS.get(c, c) for c in text)


def widths(fragment: str) -> dict[str, None]:
    """The fragment as given, NFKC-normalised (？ -> ?) and in full width (? -> ？): how customers
    may have typed the same punctuation. Ordered, without repeats."""
    half = unicodedata.normalize("NFKC", fragment)
    return dict.fromkeys([fragment, half, _full_width(half)])


def tsquery(query: Query) -> str:
    """`to_tsquery('simple', ...)` text: every token quoted ('' doubles a quote), AND-ed."""

    def quoted(token: str) -> str:
        return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"

    parts = [quoted(t) for t in query.exact] + [quoted(t) + ":*" for t in query.prefixes]
    return " & ".join(parts)


def fts5_query(query: Query) -> str:
    """FTS5 MATCH text: every token a quoted string ("" doubles a quote), AND-ed."""

    def quoted(token: str) -> str:
        return '"' + token.replace('"', '""') + '"'

    parts = [quoted(t) for t in query.exact] + [quoted(t) + "*" for t in query.prefixes]
    return " AND ".join(parts)


# ---------------------------------------------------------------- the engine-specific index


def search_ddl(dialect_name: str) -> list[str]:
    """Statements that create the search index for `message_search` (idempotent each)."""
    if dialect_name == "postgresql":
        return [
            f"CREATE INDEX IF NOT EXISTS {GIN_INDEX} ON message_search "
            "USING gin (to_tsvector('simple'::regconfig, tokens))"
        ]
    if dialect_name == "sqlite":
        return [
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} "
            # tokens come lower-cased already; unicode61 would also fold é to e, which
            # PostgreSQL's 'simple' does not (café found by cafe, with nothing in it to mark)
            "USING fts5(tokens, content='message_search', content_rowid='id', "
            "tokenize='unicode61 remove_diacritics 0')",
            "CREATE TRIGGER IF NOT EXISTS message_search_ai AFTER INSERT ON message_search BEGIN "
            f"INSERT INTO {FTS_TABLE}(rowid, tokens) VALUES (new.id, new.tokens); END",
            "CREATE TRIGGER IF NOT EXISTS message_search_ad AFTER DELETE ON message_search BEGIN "
            f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, tokens) VALUES ('delete', old.id, old.tokens); END",
            "CREATE TRIGGER IF NOT EXISTS message_search_au AFTER UPDATE ON message_search BEGIN "
            f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, tokens) VALUES ('delete', old.id, old.tokens); "
            f"INSERT INTO {FTS_TABLE}(rowid, tokens) VALUES (new.id, new.tokens); END",
            # Rows stored before the index existed (cheap when there are none).
            f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')",
        ]
    raise ValueError(f"message search: unsupported database {dialect_name!r}")


def search_drop_ddl(dialect_name: str) -> list[str]:
    """The reverse of search_ddl(), for a migration's downgrade."""
    if dialect_name == "postgresql":
        return [f"DROP INDEX IF EXISTS {GIN_INDEX}"]
    if dialect_name == "sqlite":
        return [
            "DROP TRIGGER IF EXISTS message_search_ai",
            "DROP TRIGGER IF EXISTS message_search_ad",
            "DROP TRIGGER IF EXISTS message_search_au",
            f"DROP TABLE IF EXISTS {FTS_TABLE}",
        ]
    raise ValueError(f"message search: unsupported database {dialect_name!r}")


def _index_present(connection) -> bool:
    name = connection.dialect.name
    if name == "sqlite":
        found = connection.exec_driver_sql(
            "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'trigger') AND name IN (?, ?, ?, ?)",
            (FTS_TABLE, "message_search_ai", "message_search_ad", "message_search_au"),
        ).scalar()
        return found == 4
    found = connection.exec_driver_sql("SELECT to_regclass(%(name)s) IS NOT NULL", {"name": GIN_INDEX})
    return bool(found.scalar())


def ensure_search_index(connection) -> bool:
    """Create what is missing of the search index (the table must exist); True if it did."""
    if _index_present(connection):
        return False
    for statement in search_ddl(connection.dialect.name):
        connection.exec_driver_sql(statement)
    return True


def alembic_include_name(name: str | None, type_: str, parent_names: dict) -> bool:
    """For Alembic's `include_name`: the FTS5 table (and its shadow tables) and the GIN
    index are made by search_ddl(), not by the models, so autogenerate leaves them alone."""
    if type_ == "table" and name and name.startswith(FTS_TABLE):
        return False
    return not (type_ == "index" and name == GIN_INDEX)


# ---------------------------------------------------------------- writing


_TOKENIZER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="siyu-tokenize")


def _indexed(row: dict) -> bool:
    return bool(row.get("conversation_id")) and row.get("action", "send") == "send"


def tokens_later(rows: Sequence[dict]) -> Future:
    """The search tokens of the rows that `queue` will take, worked out on another thread:
    ingest starts this before it inserts the messages into PostgreSQL, so that tokenizing
    (pure Python) runs while the database server works on that INSERT. (SQLite works in
    this process, on the thread that waits: nothing to gain there.)"""
    texts = [r.get("text") or "" for r in rows if _indexed(r)]
    return _TOKENIZER.submit(lambda: [tokens_text(t) for t in texts])


def queue(session: Session, rows: Sequence[dict], ids: dict[str, int], tokens: Future | None = None) -> int:
    """The search tokens of newly stored messages: `rows` are the dicts ingest() inserted
    (msgid, action, conversation_id, text), `ids` their message ids by msgid (what the
    INSERT returned), `tokens` what `tokens_later(rows)` gave, if it was called. Only
    messages of a conversation with some text are indexed. Returns how many.

    PostgreSQL: they wait in one backlog row, [[message id, tokens], ...] as JSON, for
    `index_backlog`, so that the index's own work (a row, two keys and the GIN entries per
    message) is done by another connection, on another core, while the archive goes on.
    SQLite (one writer, in this process: nothing could overlap) indexes them at once."""
    indexed = [r for r in rows if _indexed(r)]
    found = tokens.result() if tokens is not None else [tokens_text(r.get("text") or "") for r in indexed]
    entries = [
        (ids[r["msgid"]], text_tokens)
        for r, text_tokens in zip(indexed, found, strict=True)
        if text_tokens and r["msgid"] in ids
    ]
    if session.get_bind().dialect.name == "postgresql":
        if entries:
            bulk.insert_rows(session, SearchBacklog, [{"entries": json.dumps(entries, ensure_ascii=False)}])
    else:
        bulk.insert_rows(session, MessageSearch, [{"message_id": i, "tokens": t} for i, t in entries])
    return len(entries)


# One queued batch, claimed, indexed and taken off the backlog in one statement (PostgreSQL).
# A message deleted meanwhile is left out rather than failing the batch: a batch that
# failed would be claimed first again and again, and hold up every batch after it.
INDEX_ONE_BATCH = text(
    """
    WITH batch AS (
        DELETE FROM search_backlog WHERE id = (
            SELECT id FROM search_backlog WHERE tenant_id = :tenant
            ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
        )
        RETURNING tenant_id, entries
    ), added AS (
        INSERT INTO message_search (tenant_id, message_id, tokens)
        SELECT batch.tenant_id, message.id, entry ->> 1
        FROM batch
        CROSS JOIN LATERAL json_array_elements(batch.entries::json) AS entry
        JOIN messages AS message
            ON message.id = (entry ->> 0)::bigint AND message.tenant_id = batch.tenant_id
        ON CONFLICT (tenant_id, message_id) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM added)
    """
)


def index_backlog(db, tenant_id: int) -> int:
    """Index a tenant's queued batches (PostgreSQL), one transaction each, until none is
    left; returns how many messages got tokens. Several workers may run it at once: a batch
    is claimed (FOR UPDATE SKIP LOCKED) and deleted in the statement that indexes it, and a
    message's tokens are unique, so a crash leaves the batch queued and nothing is indexed
    twice. Python does no work per message here, so a thread running it holds up nobody."""
    if not db.is_postgres:
        return 0  # SQLite indexes at once (`queue`)
    indexed = 0
    while True:
        with db.tenant_session(tenant_id) as s:
            claimed, added = s.execute(INDEX_ONE_BATCH, {"tenant": tenant_id}).one()
        if not claimed:
            return indexed
        indexed += added


# ---------------------------------------------------------------- reading

_fts = table(FTS_TABLE, column("rowid"))


def match(session: Session, query: Query) -> ColumnElement[bool]:
    """The condition "this message_search row has every indexed token of the query"."""
    if session.get_bind().dialect.name == "postgresql":
        vector = func.to_tsvector(literal_column("'simple'::regconfig"), MessageSearch.tokens)
        return vector.op("@@")(func.to_tsquery(literal_column("'simple'::regconfig"), tsquery(query)))
    matching = select(_fts.c.rowid).where(
        text(f"{FTS_TABLE} MATCH :fts_query").bindparams(fts_query=fts5_query(query))
    )
    return MessageSearch.id.in_(matching)


def matching_ids(session: Session, query: Query):
    """The ids of the messages that have every indexed token of the query, to join. On
    PostgreSQL a MATERIALIZED CTE, so that each search row is matched once: joined to the
    messages directly, a planner whose statistics predate a tenant's messages (a tenant new
    since the last ANALYZE, autovacuum behind or off) took the tenant for a row or two and
    matched every search row of the tenant again for each of its messages, and a search of a
    tenant of 5,000 messages ran for over 20 s."""
    found = select(MessageSearch.message_id).where(match(session, query))
    if session.get_bind().dialect.name == "postgresql":
        return found.cte("search_hits").prefix_with("MATERIALIZED")
    return found.subquery("search_hits")


def like_pattern(fragment: str) -> str:
    escaped = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def singles_condition(text_column, query: Query) -> ColumnElement[bool]:
    """The text holds each of the query's singles and phrases (`Query.checked`)."""
    return and_(
        *(or_(*(text_column.like(like_pattern(f), escape="\\") for f in widths(s))) for s in query.checked)
    )


# ---------------------------------------------------------------- snippets


def _fold(c: str) -> str:
    folded = unicodedata.normalize("NFKC", c).lower()  # as the index has it: Ａ１ → a1
    if len(folded) == 1:
        return folded
    return c.lower() if len(c.lower()) == 1 else c


def _folded(text: str) -> str:
    """Normalised as the query is (full width → half width, lower case), one character for one
    (positions stay those of the original)."""
    return "".join(map(_fold, text))


def _in_word(text: str, at: int) -> bool:
    """Whether a cut at `at` falls inside a latin word or number."""
    before, after = text[at - 1], text[at]
    return before.isascii() and before.isalnum() and after.isascii() and after.isalnum()


def _word_char(c: str) -> bool:
    return c.isalnum() and not _CJK_ONE.match(c)


_CJK_ONE = re.compile(_CJK)


def _found_at(folded: str, start: int) -> bool:
    """Whether the index finds a word at `start` (it matches words as prefixes): at a word's
    start, or inside a number where one of its tails begins. Not "pro" inside "approve", nor
    1234 inside SF1234567890: the snippet had centred on those and cut off the real match."""
    if start == 0 or not _word_char(folded[start - 1]):
        return True
    begin, end = start, start
    while begin > 0 and _word_char(folded[begin - 1]):
        begin -= 1
    while end < len(folded) and _word_char(folded[end]):
        end += 1
    number = folded[begin:end]
    return number.isdigit() and 3 < len(number) <= MAX_NUMBER and 3 <= end - start <= TAIL_DIGITS


def snippet(text: str, query: Query) -> tuple[str, list[tuple[int, int]]]:
    """A window of `text` around the first match, and the matched spans in it."""
    text = " ".join((text or "").split())
    folded = _folded(text)
    terms = sorted({t for t in query.terms if t}, key=len, reverse=True)
    spans: list[tuple[int, int]] = []
    grouped: list[tuple[int, int]] | None = None
    for term in terms:
        word = _word_char(term[0])
        if len(term) >= 3 and term.isdigit():  # found through its groups too: 138-1234-5678
            if grouped is None:
                grouped = (
                    [m.span() for m in _GROUPED.finditer(folded)] if _SEPARATED_DIGIT.search(folded) else []
                )
            for m in re.finditer("[-, ]?".join(term), folded):
                # a grouped number is indexed whole, with its tails: 345678 of 138-1234-5678
                whole = any(a <= m.start() and m.end() == b for a, b in grouped)
                if whole or _found_at(folded, m.start()):
                    spans.append(m.span())
            continue
        # a one-letter word is looked for whole (parse_query): C++ is not the C of Chrome
        whole = word and len(term) == 1
        start = folded.find(term)
        while start >= 0:
            after = folded[start + 1 : start + 2]
            if not word or (_found_at(folded, start) and not (whole and after and _word_char(after))):
                spans.append((start, start + len(term)))
            start = folded.find(term, start + 1)
    first = min((s for s, _ in spans), default=0)
    lo = max(0, first - SNIPPET_BEFORE)
    hi = min(len(text), first + SNIPPET_AFTER)
    # not in the middle of a latin word or number (…hone 15 Pro): to its start, or its end
    while 0 < lo < first and (_in_word(text, lo) or text[lo] == " "):
        lo += 1
    first_end = min((e for s, e in spans if s == first), default=0)
    cut = hi
    while first_end < cut < len(text) and _in_word(text, cut):
        cut -= 1
    if cut > first_end:  # a word running to the end of the window stays cut rather than gone
        hi = cut
    while hi > first_end and text[hi - 1] == " ":
        hi -= 1
    prefix, suffix = ("…" if lo > 0 else ""), ("…" if hi < len(text) else "")
    shift = len(prefix) - lo
    shown: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        s, e = max(s, lo) + shift, min(e, hi) + shift
        if s >= e:
            continue
        if shown and s <= shown[-1][1]:  # overlapping or touching: one mark (iPhone15 whole)
            shown[-1] = (shown[-1][0], max(shown[-1][1], e))
        else:
            shown.append((s, e))
    return prefix + text[lo:hi] + suffix, shown


def snippet_parts(value: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """(text, highlighted) pieces, for a template to wrap the highlighted ones in <mark>."""
    parts: list[tuple[str, bool]] = []
    at = 0
    for s, e in spans:
        if s > at:
            parts.append((value[at:s], False))
        parts.append((value[s:e], True))
        at = e
    if at < len(value):
        parts.append((value[at:], False))
    return parts
