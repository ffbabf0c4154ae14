"""What a deployment allows is decided in one place: ``studio/policy.py`` asks ``public_mode()``, every other module
asks the policy a question by name, ``studio/settings.py`` alone reads the ``STUDIO_*`` variables, and the fields
of the config that name a model or a file are marked so that the gate's check walks them."""

import ast

import pytest
from conftest import ROOT

from studio import config
from studio.engine import gate
from studio.engine.errors import StudioError
from studio.policy import OWN_TOKEN, policy
from studio.settings import settings

STUDIO = ROOT / "studio"


def calls_and_reads(path):
    """Each ``public_mode()`` call and each read of a ``STUDIO_*`` variable (os.environ.get / [] / os.getenv) in
    a module, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "public_mode":
            found.append(("public_mode()", node.lineno))
        text = ast.unparse(node) if isinstance(node, (ast.Call, ast.Subscript)) else ""
        if ("environ" in text or "getenv" in text) and "'STUDIO_" in text and text.count("(") <= 2:
            found.append(("STUDIO_ variable", node.lineno))
    return found


def test_public_mode_and_studio_variables_are_read_only_by_the_policy_and_the_settings():
    where = {}
    for path in STUDIO.rglob("*.py"):
        for what, line in calls_and_reads(path):
            where.setdefault(what, set()).add(f"{path.relative_to(ROOT)}:{line}")
    assert {w.split(":")[0] for w in where["public_mode()"]} == {"studio/policy.py"}, where["public_mode()"]
    assert {w.split(":")[0] for w in where["STUDIO_ variable"]} == {"studio/settings.py"}, where["STUDIO_ variable"]


def test_the_scan_finds_what_it_looks_for(tmp_path):
    """The test above would pass on a scan that finds nothing: it finds each kind in a module written for it."""
    (tmp_path / "m.py").write_text("import os\nfrom studio.policy import public_mode\n"
                                   "x = public_mode()\ny = os.environ.get('STUDIO_HOME')\nz = os.getenv('STUDIO_X')\n")
    assert sorted(calls_and_reads(tmp_path / "m.py")) == [("STUDIO_ variable", 4), ("STUDIO_ variable", 5),
                                                       ("public_mode()", 3)]


@pytest.mark.parametrize(("value", "public"), [("1", True), ("yes", True), ("true", True), ("anything", True),
                                               ("0", False), ("false", False), ("off", False), ("", False)])
def test_studio_public_is_a_switch_that_never_fails_open(monkeypatch, value, public):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv("STUDIO_PUBLIC", value)
    assert policy().scoped is public and policy().names_folders is not public
    monkeypatch.setenv("SPACE_ID", "someone/studio")
    assert policy().scoped  # a Space is public whatever STUDIO_PUBLIC says


def test_settings_follow_the_environment_and_type_its_values(monkeypatch):
    monkeypatch.setenv("STUDIO_MAX_EXAMPLES", "7")
    monkeypatch.setenv("STUDIO_PORT", "")  # set but empty: the default, not an error
    monkeypatch.setenv("STUDIO_TRAINING", "off")
    s = settings()
    assert s.max_examples == 7 and s.port is None and s.training is False
    monkeypatch.setenv("STUDIO_MAX_EXAMPLES", "9")
    assert settings().max_examples == 9  # read again once a variable changed


def test_limits_whose_default_depends_on_the_deployment(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("STUDIO_MAX_TRIALS", raising=False)
    monkeypatch.delenv("STUDIO_PUBLIC", raising=False)
    assert policy().max_trials == 256 and policy().max_data_bytes == 2**30
    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    assert policy().max_trials == 16 and policy().max_data_bytes == 2**28
    monkeypatch.setenv("STUDIO_MAX_TRIALS", "40")
    assert policy().max_trials == 40


def test_a_push_takes_a_visitors_own_login_on_a_public_deployment_and_a_typed_token_locally(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("STUDIO_PUBLIC", raising=False)
    assert policy().push_token(" typed ", None) == "typed" and policy().push_token("", "login") == "login"
    assert policy().push_token("", None) is None  # the hub client's own: HF_TOKEN or the saved login
    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    assert policy().push_token("typed", "login") == "login"  # a typed token is not taken
    with pytest.raises(ValueError, match="your own token"):
        policy().push_token("typed", None)
    assert "never lends its own" in OWN_TOKEN
    assert policy().hub_token() is False


def test_every_config_field_that_names_a_model_or_a_file_is_marked():
    """A new method's ``*_model`` setting or a new ``*_path`` is walked by the gate only if it is marked."""
    marked = {f"{s}.{n}" for s, n, _ in config.marked("names")}
    named = {f"{s}.{n}" for s, cls in config.SECTIONS.items() for n in cls.__pydantic_fields__
             if n.endswith(("_model", "path")) or (s, n) == ("model", "name")}
    assert named <= marked and {"data.path", "model.name", "method.reward_model", "eval.reward_model"} <= marked


def test_the_gate_walks_the_marked_fields(monkeypatch):
    """On a public deployment a folder named in any marked model field is refused, and a marked field added
    later is checked too (here: the mark taken off method.reward_model lets it through, proving the walk reads
    the marks rather than a list of its own)."""
    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    cfg = config.StudioConfig.from_dict({"method": {"kind": "rl", "reward_model": "/etc"}})
    with pytest.raises(StudioError, match="method.reward_model"):
        gate.check_config(cfg)
    real = config.marked
    monkeypatch.setattr(config, "marked", lambda mark: [m for m in real(mark) if m[:2] != ("method", "reward_model")])
    gate.check_config(cfg)
    cfg = config.StudioConfig.from_dict({"model": {"trust_remote_code": True}})
    with pytest.raises(StudioError, match="model.trust_remote_code is switched off"):
        gate.check_config(cfg)
    monkeypatch.setenv("STUDIO_ALLOW_TRUST_REMOTE_CODE", "1")
    assert gate.check_config(cfg).model.trust_remote_code  # with the operator's consent
