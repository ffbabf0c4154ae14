"""Fine-tuning studio: data in, a base model and a method chosen, training watched, the result judged."""

__version__ = "0.1.0"

from studio.engine import methods as _methods  # noqa: E402,F401 - the training methods register themselves
