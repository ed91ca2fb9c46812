"""Progress bars: tqdm's own bar in a terminal, a bounded number of plain lines in a log."""
import io
import re

from foleylib.core.progress import LOG_PERCENT, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_bar(stream, total: int | None = 1000, **options) -> str:
    with progress_bar(total, "work", file=stream, **options) as bar:
        for i in range(1000):
            bar.update()
            bar.set_postfix(i=i)  # refreshes a terminal bar at every call
    return stream.getvalue()


def test_a_log_gets_a_line_every_few_percent_and_no_carriage_returns():
    text = run_bar(io.StringIO(), mininterval=0)  # no time limit: the percent rule alone
    lines = text.splitlines()
    assert "\r" not in text and all(line.startswith("work:") for line in lines)
    percents = [int(re.search(r"(\d+)%", line).group(1)) for line in lines]
    steps = 100 // LOG_PERCENT
    assert percents == [k * LOG_PERCENT for k in range(steps + 1)] + [100]  # start, each step, the closing total
    assert "1000/1000" in lines[-1]


def test_a_log_gets_few_lines_by_default_with_or_without_a_total():
    for total in (1000, None):
        text = run_bar(io.StringIO(), total)
        assert "\r" not in text and 2 <= len(text.splitlines()) <= 100 // LOG_PERCENT + 2, total
        assert "1000" in text.splitlines()[-1]


def test_a_terminal_keeps_the_redrawn_bar_and_disabled_writes_nothing():
    assert run_bar(Terminal()).count("\r") > 100  # tqdm as it is: one redraw per postfix
    assert run_bar(io.StringIO(), enabled=False) == run_bar(Terminal(), enabled=False) == ""
