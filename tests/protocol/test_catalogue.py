import math

import pytest

from app.backends.registry import SERVED_MODELS, served_spec
from app.celery_app import celery_app, route_task
from app.protocol.catalogue import CATALOGUE, SCHEDULERS
from app.protocol.errors import InvalidRequest
from app.protocol.request import parse_request
from app.queues import Queue


def test_incentive_shares_sum_to_one():
    assert math.isclose(sum(s.incentive_share for s in CATALOGUE.values()), 1.0)


def test_spec_numbers_match_the_specification():
    rv = CATALOGUE["RealisticVision"]
    assert (rv.steps, rv.width, rv.height, rv.guidance, rv.timeout_s) == (30, 512, 512, 7.0, 12)
    t2v = CATALOGUE["TextToVideo"]
    assert (t2v.steps, t2v.num_frames, t2v.width, t2v.fps, t2v.timeout_s) == (25, 16, 256, 8, 60)
    assert CATALOGUE["RealitiesEdgeXL"].steps == 7 and CATALOGUE["RealitiesEdgeXL"].guidance == 5.5


@pytest.mark.parametrize("model", SERVED_MODELS)
def test_defaults_pass_their_own_bounds(model):
    spec = CATALOGUE[model]
    assert spec.scheduler in SCHEDULERS
    request = parse_request({"model": model, "prompt": "a cat", "seed": 1})
    assert request.params.steps == spec.steps and request.params.scheduler == spec.scheduler


def test_every_model_type_has_its_queue_and_route():
    assert {q.value for q in Queue if q.value.startswith("generate.")} == {f"generate.{m}" for m in CATALOGUE}
    for m in SERVED_MODELS:
        assert route_task("seedgrid.generate", (), {"request": {"model": m}}, {}) == {"queue": f"generate.{m}"}


def test_every_validator_task_declares_its_queue_and_is_routed_there():
    import app.tasks.validator as tasks

    declared = {name: getattr(tasks, name).queue for name in ("sync_miners", "query_miner", "reproduce",
                                                                "verify_response", "epoch_tick", "set_weights")}
    assert declared == {"sync_miners": "io", "query_miner": "io", "reproduce": "validator.gpu",
                        "verify_response": "validator.gpu", "epoch_tick": "default", "set_weights": "default"}
    for name, queue in declared.items():
        task = getattr(tasks, name)
        assert route_task(task.name, (), {}, {}, task=task) == {"queue": queue}


def test_types_without_a_backend_are_refused():
    with pytest.raises(InvalidRequest) as err:
        served_spec("Gemma7b")
    assert err.value.field == "model"


def test_celery_is_json_only_and_reliable():
    conf = celery_app.conf
    assert conf.task_serializer == "json" and list(conf.accept_content) == ["json"]
    assert conf.result_serializer == "json" and list(conf.result_accept_content) == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    from app.config import get_settings
    from app.generation.limits import longest_hard_limit

    assert conf.broker_transport_options["visibility_timeout"] > longest_hard_limit(get_settings())
