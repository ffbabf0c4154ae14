"""Everything that computes: data, models, training, jobs, runs, estimates. Never imports gradio
or plotly, so it runs headless (CLI, CI, a GPU box)."""
