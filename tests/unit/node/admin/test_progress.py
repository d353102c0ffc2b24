"""node/admin/progress.py: plain progress lines, throttled."""

from __future__ import annotations

import io

from node.admin.progress import ThrottledLines, job_progress


def test_plain_progress_lines_are_throttled_but_keep_the_last_and_every_note() -> None:
    out = io.StringIO()
    now = [100.0]
    lines = ThrottledLines(out, interval_s=1.0, clock=lambda: now[0])
    for done in range(1, 11):  # ten updates within 0.9 s
        lines.advance(done * 10, 200, "objects")
        now[0] += 0.1
    lines.note("found something")
    now[0] += 1.0
    lines.advance(150, 200, "objects")  # a second later: shown
    lines.advance(160, 200, "objects")  # at once: not shown
    lines.advance(200, 200, "objects")  # the last: always shown
    assert out.getvalue().splitlines() == [
        "10/200 objects",
        "found something",
        "150/200 objects",
        "200/200 objects",
    ]


def test_job_progress_off_a_terminal_is_plain_lines() -> None:
    out = io.StringIO()
    with job_progress("scrub", out) as progress:
        progress.advance(1, None, "bytes")
        progress.note("done")
    assert out.getvalue() == "1 bytes\ndone\n"
