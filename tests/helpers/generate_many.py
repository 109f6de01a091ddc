"""Run in a separate process: generate each request on stdin (JSON list), print their hashes."""

import json
import sys

from app.config import get_settings
from app.generation.service import get_engine
from app.protocol.request import parse_request

settings = get_settings()
out = []
for raw in json.load(sys.stdin):
    request = parse_request(raw)
    out.append(get_engine(request.model, settings).generate(request).pixel_sha256)
print(json.dumps(out))
