"""Short closings any agent would agree on (嗯哪, 没有啥了, 不了不了, the newer WeChat emoji, traditional
characters), and the command line on input a reader might not take."""

from __future__ import annotations

import io
import json

import pytest

from siyu.insights import default_classifier
from siyu.insights.needs_reply import run_cli

DONE = "退款已经提交了，1到3个工作日到账。"  # a staff statement that asks nothing
CLOSING_CHECK = "请问还有其他问题吗？"


def label(text: str, context: str | None = DONE) -> str:
    return default_classifier().classify([(text, context)])[0].label


# ------------------------------------------------------------------ short, unambiguous closings


@pytest.mark.parametrize("context", [DONE, CLOSING_CHECK, None])
@pytest.mark.parametrize("text", ["嗯哪", "嗯哪，谢谢", "恩哪"])
def test_en_na_is_an_acknowledgement_not_a_question(text, context):
    """嗯哪 (northern "yes / uh-huh") is listed in lexicon.ACK, but the veto's bare 哪 (which?)
    turns it into a question: it must close like 嗯呐 does."""
    assert label(text, context) == "closing"


@pytest.mark.parametrize("context", [CLOSING_CHECK, DONE])
@pytest.mark.parametrize("text", ["没有啥了", "没有啥了，谢谢", "没有啥问题了", "木有啥了", "暂时没有啥了"])
def test_nothing_else_with_sha_closes_like_nothing_else_with_shenme(text, context):
    """lexicon.NOTHING spells "nothing else" with 啥 (没有啥了), as 没啥了 and 没有什么了 close; the
    veto's (?<!没)啥 only spares 没啥, so 没有啥了 after 还有其他问题吗 was taken for a question."""
    assert label(text, context) == "closing"


@pytest.mark.parametrize("context", [CLOSING_CHECK, DONE])
@pytest.mark.parametrize("text", ["不了不了", "不了不了，谢谢"])
def test_a_doubled_no_thanks_closes(text, context):
    """不了不了 ("no, no, that's all") closes as 不用不用 and 不了，谢谢 do; the veto meant for
    修不了 / 退不了 (can't) catches the second 不了."""
    assert label(text, context) == "closing"


@pytest.mark.parametrize(
    "text",
    [
        "好的[破涕为笑]",
        "谢谢[笑脸]",
        "好的谢谢[脸红]",
        "收到[破涕为笑]",
        "[笑脸]",
        "OK[Happy]",
        "好的[Lol]",
    ],
)
def test_wechat_emoji_codes_of_the_newer_set_are_emoji_not_content(text):
    """WeChat's built-in emoji include [笑脸] (Happy), [脸红] (Flushed), [破涕为笑] (Lol) next to
    [微笑]; an acknowledgement with one (or one alone) closes as 好的[微笑] does. Unknown to
    lexicon.EMOJI_CODES, they stayed in the text as content and the message needed a reply."""
    assert label(text) == "closing"


# ------------------------------------------------------------------ the command line


def test_cli_names_the_line_of_a_number_too_long_to_read():
    """A number of over 4,300 digits makes json.loads raise a plain ValueError (Python's int
    limit), not a JSONDecodeError: the refusal went out without its line number."""
    stdout = io.StringIO()
    stdin = io.StringIO('{"text": "好的谢谢"}\n{"text": "在吗", "id": ' + "9" * 5000 + "}\n")
    with pytest.raises(ValueError, match=r"^line 2: "):
        run_cli(stdin, stdout, batch_size=10)
    assert [json.loads(x)["label"] for x in stdout.getvalue().splitlines()] == ["closing"]


def test_the_command_names_the_line_of_a_number_too_long_to_read():
    from typer.testing import CliRunner

    from siyu.cli import app

    data = '{"text": "好的"}\n{"text": "x", "n": '.encode() + b"9" * 5000 + b"}\n"
    r = CliRunner().invoke(app, ["needs-reply"], input=data)
    assert r.exit_code == 1 and "line 2" in r.output


@pytest.mark.parametrize("data", ["\ufeff", "\ufeff\n", '\ufeff\n{"text": "好的谢谢"}\n'])
def test_a_bom_before_a_blank_first_line_is_no_bad_line(data):
    """A file saved as UTF-8 with a BOM (Notepad) that is empty, or whose first line is blank:
    the BOM is no content and a blank line is skipped, as an empty file gives no output and
    no error. The BOM was only taken off lines that hold JSON, so line 1 was refused."""
    stdout = io.StringIO()
    expected = data.count('"text"')
    assert run_cli(io.StringIO(data), stdout) == expected
    assert len(stdout.getvalue().splitlines()) == expected


@pytest.mark.parametrize("text", ["謝謝", "好的，謝謝", "沒有了，謝謝", "好的，再見", "收到，謝謝"])
def test_closings_in_traditional_characters_close(text):
    """A customer writing traditional characters (Hong Kong, Taiwan, overseas WeChat users)
    thanks with 謝謝 and says goodbye with 再見: NFKC leaves them as they are and no phrase of
    the lexicon spells them, so every such closing needed a reply."""
    assert label(text) == "closing"
