"""IA3: learned scales on keys, values and the MLP (the fewest trained parameters)."""

from __future__ import annotations

from studio.engine.registry import Method, register


def _ia3(model, method, total_steps, task):
    import peft

    return peft.IA3Config(task_type=task)


register(Method(name="ia3", help="learned scales on keys, values and MLP: the fewest parameters", peft_config=_ia3,
                order=20))
