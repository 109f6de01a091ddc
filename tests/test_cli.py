"""The `seedgrid` command as a user runs it: in a subprocess, reading its output."""

import json

from .helpers.commands import seedgrid


def test_generate_in_process_prints_json_and_writes_the_file(tmp_path, database):
    out = tmp_path / "cat.png"
    p = seedgrid("generate", "--model", "DreamShaper", "--prompt", "a cat", "--seed", "3", "--steps", "4",
                 "--width", "256", "--height", "256", "--out", str(out), "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert result["status"] == "succeeded" and result["media_type"] == "image/png"
    from app.protocol import media

    assert media.pixel_sha256(media.decode_png(out.read_bytes())) == result["pixel_sha256"]


def test_bad_inputs_exit_2_naming_the_field():
    cases = [
        (["--model", "Nope"], "model"),
        (["--model", "RealisticVision", "--steps", "51"], "params.steps"),
        (["--model", "RealisticVision", "--width", "513"], "params.width"),
        (["--model", "TextToVideo", "--frames", "65"], "params.num_frames"),
        (["--model", "RealisticVision", "--prompt", ""], "prompt"),
        (["--model", "RealisticVision", "--pipeline", "outpaint"], "pipeline"),
    ]
    for args, field in cases:
        full = ["generate", "--prompt", "a cat", "--seed", "1", *args, "--json"]
        p = seedgrid(*full)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        body = json.loads(p.stdout)
        assert body["field"] == field and body["detail"], body


def test_conditioning_options_are_sent_as_request_fields(tmp_path):
    """--init-image and --control files go as base64 fields, read by parse_request (which names what is wrong)."""
    garbage = tmp_path / "init.png"
    garbage.write_bytes(b"not an image")
    p = seedgrid("generate", "--model", "TextToVideo", "--prompt", "a cat", "--seed", "1", "--init-image",
                 str(garbage), "--json")
    assert p.returncode == 2 and json.loads(p.stdout)["field"] == "pipeline", p.stdout  # video has no img2img
    p = seedgrid("generate", "--model", "RealisticVision", "--prompt", "a cat", "--seed", "1", "--control", "canny")
    assert p.returncode == 2 and "--control TYPE and --control-image FILE" in p.stderr, p.stderr


def test_worker_refuses_an_unknown_model():
    p = seedgrid("worker", "gpu", "--model", "Nope")
    assert p.returncode == 2 and "--model" in p.stderr and "Nope" in p.stderr


def test_invalid_settings_name_the_variable():
    p = seedgrid("models", "list", env={"SEEDGRID_THREADS": "0"})
    assert p.returncode == 1 and "SEEDGRID_THREADS" in p.stderr


def test_models_list_shows_the_catalogue():
    p = seedgrid("models", "list")
    assert p.returncode == 0 and "RealitiesEdgeXL" in p.stdout and "Gemma7b" in p.stdout


def test_wallet_and_local_chain_commands(tmp_path):
    env = {"SEEDGRID_STATE_DIR": str(tmp_path), "SEEDGRID_CHAIN": "local", "SEEDGRID_NETUID": "5"}
    created = seedgrid("wallet", "create", "--name", "cold", "--hotkey", "hot", env=env)
    assert created.returncode == 0 and "created cold/hot" in created.stdout
    assert "exists" in seedgrid("wallet", "create", "--name", "cold", "--hotkey", "hot", env=env).stdout
    missing = seedgrid("chain", "register", "--wallet", "cold", "--hotkey", "nope", env=env)
    assert missing.returncode == 1 and "seedgrid wallet create --name cold --hotkey nope" in missing.stderr
    no_subnet = seedgrid("chain", "register", "--wallet", "cold", "--hotkey", "hot", env=env)
    assert no_subnet.returncode == 1 and "seedgrid chain init" in no_subnet.stderr
    assert seedgrid("chain", "init", "--block-time", "0.5", env=env).returncode == 0
    assert seedgrid("chain", "register", "--wallet", "cold", "--hotkey", "hot", env=env).stdout.startswith("uid 0")
    assert seedgrid("chain", "stake", "--wallet", "cold", "--hotkey", "hot", "--amount", "42000", env=env).returncode == 0
    shown = json.loads(seedgrid("chain", "show", "--json", env=env).stdout)
    assert shown["netuid"] == 5 and shown["neurons"][0]["stake"] == 42000 and shown["neurons"][0]["validator_permit"]
    bad = seedgrid("chain", "stake", "--wallet", "cold", "--hotkey", "hot", "--amount", "-1", env=env)
    assert bad.returncode == 2 and "--amount" in bad.stderr


def test_miner_serve_refuses_an_unregistered_hotkey_and_a_bad_model(tmp_path):
    env = {"SEEDGRID_STATE_DIR": str(tmp_path), "SEEDGRID_CHAIN": "local"}
    seedgrid("wallet", "create", "--name", "m", "--hotkey", "h", env=env)
    seedgrid("chain", "init", env=env)
    p = seedgrid("miner", "serve", "--model", "RealisticVision", "--wallet", "m", "--hotkey", "h", "--port", "1",
                 env=env)
    assert p.returncode == 1 and "not registered" in p.stderr and "seedgrid chain register" in p.stderr
    p = seedgrid("miner", "serve", "--model", "Gemma7b", "--wallet", "m", "--hotkey", "h", env=env)
    assert p.returncode == 2 and "--model" in p.stderr
