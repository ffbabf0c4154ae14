"""Tabs whose issue has not landed yet say what is coming, and nothing else."""

import gradio as gr

COMING = {
    "Compare": "Base vs tuned, side by side on held-out prompts, scored by perplexity, BLEU, ROUGE, METEOR and "
               "BERTScore with confidence intervals and a paired significance test.",
    "Rate": "People rate outputs on a 1-5 scale and in blind A/B pairs; a leaderboard, rater agreement, and "
            "the votes can train the next model.",
    "Export": "One-click adapter zip with a model card; merged and quantized exports; push to the hub.",
}


def build(name: str) -> gr.Markdown:
    return gr.Markdown(f"### Coming soon\n{COMING[name]}")
