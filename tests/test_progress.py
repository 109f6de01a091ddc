"""Long waits show their progress (issue 15): on a terminal a live bar, in a log its final state,
on stderr so that a command's own output stays parseable; a failure stays its one line."""

from .helpers.commands import seedgrid


def test_building_dev_checkpoints_shows_its_progress_on_stderr():
    p = seedgrid("models", "build-dev", "--model", "RealisticVision", "--model", "TextToVideo")
    assert p.returncode == 0, p.stderr
    assert "2 dev checkpoints" in p.stderr and "2/2" in p.stderr, p.stderr
    rows = p.stdout.strip().splitlines()
    assert [r.split()[0] for r in rows if not r.startswith(" ")] == ["RealisticVision", "TextToVideo"], p.stdout


def test_a_log_gets_the_final_state_once():
    import io

    from rich.console import Console

    from app.progress import steps

    out = io.StringIO()
    with steps(3, "three things done", Console(file=out, force_terminal=False, width=100)) as step:
        for what in ("one", "two", "three"):
            step(f"doing {what}")
    text = out.getvalue()
    assert text.strip() == text.strip().splitlines()[0], text
    assert "three things done: 3/3" in text and "doing" not in text, text


def test_a_failed_block_leaves_no_progress_line():
    import io

    import pytest
    from rich.console import Console

    from app.progress import steps

    for terminal in (False, True):
        out = io.StringIO()
        with pytest.raises(KeyError):
            with steps(3, "three things done", Console(file=out, force_terminal=terminal, width=100)) as step:
                step("doing one")
                raise KeyError("stopped")
        text = out.getvalue()  # a terminal's live bar is erased (its last line cleared); a log gets nothing
        assert text.endswith("\x1b[2K") if terminal else text == "", repr(text)


def test_training_and_benchmarks_show_their_progress_on_stderr(tmp_path):
    import subprocess
    import sys

    from .conftest import ROOT

    p = seedgrid("llm", "train-dev", "--steps", "2", "--out", str(tmp_path / "text"))
    assert p.returncode == 0, p.stderr
    assert "4 training steps: 4/4" in p.stderr and "written to" in p.stdout, (p.stdout, p.stderr)
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "rollover.py"), "--miners", "4", "--outcomes", "2000"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "2,000 outcomes written: 1/1" in p.stderr and "rollover" in p.stdout, (p.stdout, p.stderr)
