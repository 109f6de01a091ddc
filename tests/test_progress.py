"""Long waits show their progress (issue 15): on a terminal a live bar, in a log its final state,
on stderr so that a command's own output stays parseable."""

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
    assert "three things done" in text and "3/3" in text and "doing" not in text, text
