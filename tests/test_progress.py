"""The progress bar: a live bar on a terminal, plain lines (no carriage returns) in a redirected log."""
import io

from sensinet._progress import ProgressBar


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_redirected_output_gets_plain_periodic_lines():
    log = io.StringIO()
    bar = ProgressBar(100, desc="study", stream=log, every=3600)
    for i in range(1, 101):
        bar.update(i, f"step {i}")
    bar.close()
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    # the first update and the close: nothing in between within the hour
    assert lines == ["study: 1/100 (1%) after 0.0 s step 1", lines[-1]] and lines[-1].startswith("study: 100/100 (100%)")


def test_terminal_gets_a_live_bar():
    tty = _Tty()
    bar = ProgressBar(10, desc="fit", stream=tty)
    bar.update(5, "half", force=True)
    bar.close()
    text = tty.getvalue()
    assert text.startswith("\rfit [##############--------------] 5/10") and text.endswith("\n")
