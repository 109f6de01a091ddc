"""`seedgrid doctor` from a "host" with the real services: each answers, or each failure is named with what to set."""

import json
import os
import subprocess

from .conftest import free_port
from .helpers.commands import SEEDGRID
from .helpers.s3 import make_bucket, s3_env, s3_server


def doctor(env: dict) -> tuple[int, dict]:
    p = subprocess.run([SEEDGRID, "doctor", "--json", "--timeout", "10"], env={**os.environ, **env},
                       capture_output=True, text=True, timeout=120)
    return p.returncode, {c["check"]: c for c in map(json.loads, p.stdout.splitlines())}


def test_doctor_passes_with_shared_services_and_names_each_failure(settings, database, redis_url, tmp_path):
    from app.chain.local import LocalChain

    LocalChain(database, 13).init(block_time=1)
    shared = {"SEEDGRID_REDIS_URL": redis_url, "SEEDGRID_DATABASE_URL": database, "SEEDGRID_NETUID": "13",
              "SEEDGRID_STATE_DIR": str(tmp_path)}
    with s3_server() as url:
        make_bucket(url, "doctor")
        rc, checks = doctor({**shared, **s3_env(url, "doctor")})
        assert rc == 0 and all(c["ok"] for c in checks.values()), checks
        assert "wrote, read and deleted a probe" in checks["store"]["detail"]
        assert not checks["database"]["detail"].startswith("one host only") or database.startswith("sqlite")
        rc, checks = doctor({**shared, **s3_env(url, "nonesuch"), "SEEDGRID_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
                             "SEEDGRID_S3_SECRET_ACCESS_KEY": "x"})
    assert rc == 1
    assert not checks["broker"]["ok"] and "SEEDGRID_REDIS_URL" in checks["broker"]["detail"]
    assert not checks["store"]["ok"] and "nonesuch" in checks["store"]["detail"]
    assert checks["database"]["ok"] and checks["chain"]["ok"]
    rc, checks = doctor({**shared, "SEEDGRID_NETUID": "14"})
    assert rc == 1 and not checks["chain"]["ok"] and "SEEDGRID_" in checks["chain"]["detail"], checks["chain"]
