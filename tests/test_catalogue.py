import math

import pytest

from app.celery_app import Queue, celery_app, route_task
from app.generation.catalogue import CATALOGUE, DIFFUSION_MODELS, SCHEDULERS, get_diffusion_spec
from app.generation.errors import InvalidRequest
from app.generation.request import parse_request


def test_incentive_shares_sum_to_one():
    assert math.isclose(sum(s.incentive_share for s in CATALOGUE.values()), 1.0)


def test_spec_numbers_match_the_specification():
    rv = CATALOGUE["RealisticVision"]
    assert (rv.steps, rv.width, rv.height, rv.guidance, rv.timeout_s) == (30, 512, 512, 7.0, 12)
    t2v = CATALOGUE["TextToVideo"]
    assert (t2v.steps, t2v.num_frames, t2v.width, t2v.fps, t2v.timeout_s) == (25, 16, 256, 8, 60)
    assert CATALOGUE["RealitiesEdgeXL"].steps == 7 and CATALOGUE["RealitiesEdgeXL"].guidance == 5.5


@pytest.mark.parametrize("model", DIFFUSION_MODELS)
def test_defaults_pass_their_own_bounds(model):
    spec = CATALOGUE[model]
    assert spec.scheduler in SCHEDULERS
    request = parse_request({"model": model, "prompt": "a cat", "seed": 1})
    assert request.params.steps == spec.steps and request.params.scheduler == spec.scheduler


def test_every_diffusion_type_has_its_queue_and_route():
    assert {q.value for q in Queue if q.value.startswith("generate.")} == {f"generate.{m}" for m in DIFFUSION_MODELS}
    for m in DIFFUSION_MODELS:
        assert Queue.generate(m).is_gpu
        assert route_task("seedgrid.generate", (), {"request": {"model": m}}, {}) == {"queue": f"generate.{m}"}


def test_non_diffusion_types_are_refused_by_the_engine():
    with pytest.raises(InvalidRequest) as err:
        get_diffusion_spec("Gemma7b")
    assert err.value.field == "model"


def test_celery_is_json_only_and_reliable():
    conf = celery_app.conf
    assert conf.task_serializer == "json" and list(conf.accept_content) == ["json"]
    assert conf.result_serializer == "json" and list(conf.result_accept_content) == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    from app.settings import get_settings

    assert conf.broker_transport_options["visibility_timeout"] > get_settings().longest_hard_limit()
