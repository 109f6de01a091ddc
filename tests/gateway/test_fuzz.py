"""bench/fuzz_api.py, smaller: malformed, odd and valid requests against a real miner API, a
real gateway (GPU worker, I/O worker, Redis, database), a real text miner and its dev text
server answer no 5xx and drop no connection."""

import re
import subprocess
import sys

import pytest

from ..conftest import ROOT

pytestmark = pytest.mark.slow

REQUESTS = 400


def test_fuzzed_requests_get_no_5xx_and_drop_no_connection(redis_url, database):
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "fuzz_api.py"), "--requests", str(REQUESTS),
                        "--seed", "7"], capture_output=True, text=True, timeout=540)
    out = p.stdout + p.stderr[-3000:]
    assert p.returncode == 0, out
    for api in ("miner API", "gateway", "text miner API", "text server"):
        report = out.split(f"{api}: {REQUESTS} requests", 1)[1].split("median latency", 1)[0]
        assert "5xx: 0   dropped connections: 0" in report, out
        statuses = dict(re.findall(r"(\d{3}): (\d+)", report.split("answers by status:", 1)[1]))
        assert int(statuses.get("400", 0)) > REQUESTS / 4, f"{api}: the fuzz did not reach the parser: {report}"
        assert int(statuses.get("200", 0)) + int(statuses.get("202", 0)) > 0, f"{api}: nothing valid was served"
