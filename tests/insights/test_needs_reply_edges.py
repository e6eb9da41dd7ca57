"""The needs-reply classifier at its edges: a link or a shared card in the staff message, long
staff messages in its cache, `siyu needs-reply` writing where it cannot, and the evaluation
script's input."""

from __future__ import annotations

import gc
import json
import os
import select
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from siyu.insights.needs_reply import classify_one, default_classifier

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT / "benchmarks" / "needs_reply_eval.py"


def _env() -> dict:
    src = str(ROOT / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}


# ------------------------------------------------------------------ a link in the staff message


@pytest.mark.parametrize(
    "staff",
    [
        "您可以点击这里查看物流：https://m.kuaidi100.com/result.jsp?nu=SF1234567890",
        "亲，这是商品链接 https://item.jd.com/100012043978.html?spm=a2c4e",
        "已经给您发货了。查看：https://a.cn/x?y=1",
    ],
)
@pytest.mark.parametrize("text", ["谢谢", "收到", "👌", "没有了谢谢"])
def test_a_query_string_in_a_staff_link_is_no_question(staff, text):
    """The ? of an address's query string was read as a question to the customer: every closing
    remark after a tracking or product link needed a reply."""
    without_query = staff.split("?")[0]
    assert classify_one(text, without_query).label == "closing"  # (the control)
    assert classify_one(text, staff).label == "closing"


@pytest.mark.parametrize(
    "staff", ["这款 12.5/个，需要吗？", "点这里https://a.cn/x看下能打开吗？", "您看下这个https://a.cn/abc？"]
)
def test_a_question_beside_an_address_or_a_price_is_still_asked(staff):
    """Addresses are left out up to the first character no address has: the question after one,
    or after a price written 12.5/个, is the staff's, and 好的 to it needs a reply."""
    assert classify_one("好的", staff).label == "needs_reply"


@pytest.mark.parametrize(
    "staff",
    [
        "[链接] 空调清洗怎么预约？",
        "[小程序] 你的快递到哪了？",
        "[图文消息] 为什么选择我们？",
        # a chat forwarded: the question in it was put to the warehouse, not the customer
        "[聊天记录] 张三和仓库的聊天记录 这单能发顺丰吗？ 可以的，今天发顺丰",
    ],
)
@pytest.mark.parametrize("text", ["收到", "好的"])
def test_the_title_of_a_card_the_staff_shared_is_no_question_to_the_customer(staff, text):
    """A shared card reaches the classifier as the archive renders it, [链接] <title>: a title
    phrased as a question is the article's, not put to the customer, yet 收到 after it needed a
    reply (after [链接] 退款流程说明 it closes)."""
    assert classify_one(text, "[链接] 退款流程说明").label == "closing"  # (the control)
    assert classify_one(text, staff).label == "closing"


# ------------------------------------------------------------------ memory


def test_long_staff_messages_are_not_kept_by_the_context_cache():
    """The customers' texts are cached up to 256 characters each; the staff messages were kept
    whole, 8,192 of them, however long."""
    clf = default_classifier()
    clf.classify([("好的谢谢", "已经给您发货了")])  # warm
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(20):
            clf.classify([("好的谢谢", f"#{i} " + "您好，这款产品的详细参数如下：" * 20_000)])
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert retained < 2_000_000, f"{retained / 1e6:.1f} MB of staff messages kept after classifying"


# ------------------------------------------------------------------ the command's output


def test_the_command_says_in_one_line_when_its_output_cannot_be_written():
    """Output to a full disk (/dev/full) ended in a traceback, where an operator's mistake is one
    line on stderr and exit status 1."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "siyu", "needs-reply"],
            input='{"text": "好的"}\n'.encode(),
            stdout=full,
            stderr=subprocess.PIPE,
            env=_env(),
            timeout=120,
        )
    err = done.stderr.decode()
    assert done.returncode == 1
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_an_answer_is_written_while_the_input_stays_open():
    """A program that writes one message and waits for its verdict (a co-process, `tail -f |`)
    gets it: the answer had been held until 511 more lines or the end of the input came."""
    p = subprocess.Popen(
        [sys.executable, "-m", "siyu", "needs-reply"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    try:
        for text, label in (("在吗", "needs_reply"), ("好的谢谢", "closing")):
            p.stdin.write(json.dumps({"text": text, "context": None}).encode() + b"\n")
            p.stdin.flush()
            ready, _, _ = select.select([p.stdout], [], [], 60)
            assert ready, f"no verdict on {text} within 60 s though its line was written"
            assert json.loads(p.stdout.readline())["label"] == label
    finally:
        p.kill()
        p.wait()


# ------------------------------------------------------------------ the evaluation script


def _eval(tmp_path, content: bytes, *args, timeout=60):
    data = tmp_path / "rows.jsonl"
    data.write_bytes(content)
    return subprocess.run(
        [sys.executable, str(EVAL), "--input", str(data), "--seconds", "0.05", *args],
        capture_output=True,
        env=_env(),
        timeout=timeout,
    )


def test_eval_on_an_empty_input_ends(tmp_path):
    """With no rows nothing was ever timed, and the timing loop ran for ever."""
    try:
        done = _eval(tmp_path, b"\n", timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("needs_reply_eval.py --input <empty file> still running after 30 s")
    assert done.returncode in (0, 1)


def test_eval_refuses_a_label_it_does_not_know(tmp_path):
    """Rows labelled needs-reply or Closing counted in n but in no cell of the confusion
    matrix: the figures came out 0.000, with no word of why."""
    rows = '{"text": "好的", "label": "Closing"}\n{"text": "在吗", "label": "needs-reply"}\n'
    done = _eval(tmp_path, rows.encode())
    out = done.stdout.decode()
    last = json.loads(out.strip().splitlines()[-1]) if done.returncode == 0 else None
    assert done.returncode != 0 and "line 1" in done.stderr.decode(), (
        f"accepted silently: n={last and last['n']}, precision={last and last['precision']}, "
        f"recall={last and last['recall']}"
    )


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('\ufeff{"text": "好的", "label": "closing"}\n'.encode(), "a BOM (accepted by siyu needs-reply)"),
        (b'{"text": "\xe5\xa5\xbd", "label": "closing"}\n{"text": "x"}\n', "a row without its label"),
        (b'{"text": "\xe5\xa5\xbd", "label": "closing"}\nnot json\n', "a line that is not JSON"),
        (b'{"text": "\xe5\xa5\xbd", "label": "closing"}\n' + b"[" * 100_000 + b"\n", "nesting too deep"),
        (
            b'{"text": "\xe5\xa5\xbd", "label": "closing"}\n' + '{"text": "在吗"}\n'.encode("gbk"),
            "GBK among UTF-8 (had been named by its byte position only)",
        ),
    ],
)
def test_eval_names_the_line_it_cannot_read_without_a_traceback(tmp_path, content, why):
    done = _eval(tmp_path, content)
    err = done.stderr.decode()
    if "BOM" in why:  # a BOM is no content (README), as for `siyu needs-reply`
        assert done.returncode == 0, err[-300:]
    else:
        assert done.returncode != 0 and "Traceback" not in err and "line 2" in err, err[-300:]
