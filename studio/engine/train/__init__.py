"""Training: the run loop on a Hugging Face Trainer, its callbacks, background jobs, memory estimates."""
