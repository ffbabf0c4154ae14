"""Fine-tuning studio: data in, a base model and a method chosen, training watched, the result judged."""

__version__ = "0.1.0"
