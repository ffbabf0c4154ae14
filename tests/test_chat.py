"""The Chat tab's engine: base and tuned answer the same message at the same time (a LoRA run in one
mixed-adapter batch of its shared weights, a full fine-tune from its two models in parallel), each to its own
multi-turn history, and each answer is the one that side gives alone."""

import pytest
from conftest import SAMPLES, tiny_config

from studio.config import EvalConfig, StudioConfig
from studio.engine.judge.chat import CHATS, mixable, replies, reply
from studio.engine.train import loop as train

pytestmark = pytest.mark.slow  # trains two small runs

SETTINGS = EvalConfig(max_new_tokens=24)
HISTORIES = {  # two turns in, the sides' histories differ, as they do after the first answer
    "base": [{"role": "user", "content": "Give the plural of the word below.\ncat"},
             {"role": "assistant", "content": "cats cats cats"},
             {"role": "user", "content": "Add 3 and 4."}],
    "tuned": [{"role": "user", "content": "Give the plural of the word below.\ncat"},
              {"role": "assistant", "content": "The plural of \"cat\" is \"cats\"."},
              {"role": "user", "content": "Add 3 and 4."}],
}


@pytest.fixture(scope="module", params=["lora", "full"])
def chat_run(request, tmp_path_factory):
    kind = request.param
    cfg = tiny_config(SAMPLES / "chat.jsonl", method={"kind": kind},
                      train={"max_steps": 30, "batch_size": 8, "learning_rate": 2e-3 if kind == "lora" else 5e-4})
    result = train.run(StudioConfig.from_dict(cfg), tmp_path_factory.mktemp(kind) / kind)
    assert result.state == "completed", result.error
    return kind, result.run_dir


def test_both_sides_grow_together_and_each_answers_as_it_would_alone(chat_run):
    kind, run = chat_run
    pair, _ = CHATS.pair(run)
    assert (mixable(pair) is not None) == (kind == "lora")
    steps = list(replies(run, HISTORIES, SETTINGS))
    final = steps[-1]
    alone = {side: list(reply(run, side, HISTORIES[side], SETTINGS))[-1] for side in HISTORIES}
    assert final == alone, (final, alone)
    assert final["base"] != final["tuned"]  # the tuned side is the tuned model
    # a LoRA run's sides are rows of one batch: both grow at every token, not one after the other (a full
    # fine-tune's two models answer in two threads, whose interleaving is the scheduler's: studio-tiny's 24
    # tokens can all come within one time slice on a busy machine, so only the answers are asserted there)
    assert kind != "lora" or any(0 < len(s["base"]) < len(final["base"]) and 0 < len(s["tuned"]) < len(final["tuned"])
               for s in steps), [(len(s["base"]), len(s["tuned"])) for s in steps]
