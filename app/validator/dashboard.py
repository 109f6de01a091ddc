"""The validator's dashboard: a web page over JSON endpoints, for operators.

GET /                 the page: leaderboard (sortable), gallery, tiers and scores over epochs, weights
GET /api/status       block, epoch, tier table (and whether it is scaled for local runs)
GET /api/leaderboard  uid, hotkey, model, tier, rates, EMA score, last weight
GET /api/organic      the gateway's last 10 minutes: jobs/min, success, p50/p95 latency, failovers, verdicts
GET /api/gallery      recent challenges: reproduction beside each miner's answer, with verdicts
GET /api/history      tiers and scores per epoch
GET /api/weights      the weights last set on the chain
GET /artifacts/NAME   a content-addressed image or video (NAME = sha256.ext)
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, Response

from app import __version__, storage
from app.scoring.tiers import tier_table
from app.settings import Settings
from app.validator import views

ARTIFACT_NAME = re.compile(r"^[0-9a-f]{64}\.(png|mp4)$")
PAGE = Path(__file__).with_name("dashboard.html")


def create_dashboard_app(settings: Settings, chain=None) -> FastAPI:
    app = FastAPI(title="Seedgrid dashboard", version=__version__)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text()

    @app.get("/api/status")
    def status() -> dict:
        tiers = tier_table(settings.tier_table)
        block = chain.block() if chain is not None else None
        return {
            "version": __version__, "netuid": settings.netuid, "chain": settings.chain, "block": block,
            "epoch": block // settings.epoch_length if block is not None else None,
            "epoch_length": settings.epoch_length, "tier_table_scaled": settings.tier_table is not None,
            "tiers": [t.__dict__ for t in tiers.tiers],
        }

    @app.get("/api/leaderboard")
    def leaderboard() -> list[dict]:
        return views.leaderboard(settings)

    @app.get("/api/organic")
    def organic() -> dict:
        return views.organic(settings)

    @app.get("/api/gallery")
    def gallery(limit: int = Query(12, ge=1, le=100)) -> list[dict]:
        return views.gallery(settings, limit)

    @app.get("/api/history")
    def history() -> list[dict]:
        return views.history(settings)

    @app.get("/api/weights")
    def weights() -> dict:
        return views.last_weights(settings) or {"epoch": None, "weights": {}}

    @app.get("/artifacts/{name}")
    def artifact(name: str) -> Response:
        if not ARTIFACT_NAME.match(name):
            raise HTTPException(400, detail="name must be a sha256 followed by .png or .mp4")
        try:
            ref = views.find_artifact(settings, name)
            data = storage.load(settings, ref) if ref else None
        except storage.StoreError as exc:
            raise HTTPException(503, detail=f"the artifact store did not answer: {exc}") from None
        if data is None:
            raise HTTPException(404, detail=f"no artifact {name} (pruned, or never stored here)")
        media = "video/mp4" if name.endswith(".mp4") else "image/png"
        return Response(data, media_type=media, headers={"Cache-Control": "public, max-age=31536000"})

    return app
