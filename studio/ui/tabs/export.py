"""Export tab: the adapter as a zip with its model card (one click), a merged model, quantized
models with their size / speed / perplexity table, a GGUF file for llama.cpp / Ollama with its Modelfile, the run
behind an OpenAI-compatible server (local deployments), and a push to the hub."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gradio as gr
import pandas as pd

from studio.engine import gate, runs, timing
from studio.engine.export import exporters as E
from studio.engine.export.card import people_votes
from studio.engine.judge.scope import Scope
from studio.policy import policy
from studio.ui.handlers import deliver, guard
from studio.ui.identity import oauth_token
from studio.ui.state import Context
from studio.ui.timed import device_job, timed


@dataclass
class ExportTab:
    page: gr.Tab
    run: gr.Dropdown
    adapter: gr.DownloadButton
    merged: gr.Button
    quantize: gr.Button
    status: gr.Markdown
    table: gr.Dataframe
    repo: gr.Textbox
    token: gr.Textbox
    private: gr.Checkbox
    push: gr.Button
    gguf_quant: gr.Dropdown
    gguf: gr.Button
    gguf_files: gr.File
    serve: gr.Button
    serve_stop: gr.Button
    serve_status: gr.Markdown
    serve_curl: gr.Code
    serve_python: gr.Code


def build() -> ExportTab:
    with gr.Tab("Export") as page:
        gr.Markdown("### 7. Export\nThe adapter as a zip that loads with plain `transformers` + `peft`, with a "
                    "model card carrying the config, the evaluation and the human leaderboard.")
        run = gr.Dropdown(choices=runs.trained_runs(), label="Run", allow_custom_value=True, elem_id="export-run")
        with gr.Row():
            adapter = gr.DownloadButton("Download adapter (zip)", variant="primary", elem_id="export-adapter",
                                        interactive=False)
            merged = gr.Button("Merge into the base", elem_id="export-merged")
            quantize = gr.Button("Quantize (8-bit, 4-bit) and compare", elem_id="export-quantize")
        status = gr.Markdown(elem_id="export-status")
        table = gr.Dataframe(label="Quantization: size, speed, perplexity on the run's eval set", interactive=False,
                             visible=False)
        with gr.Accordion("GGUF for llama.cpp and Ollama", open=False):
            gr.Markdown("The run merged into one GGUF file with its tokenizer and chat template, and an Ollama "
                        "`Modelfile` beside it. f16, bf16 and q8_0 are written here; the k-quants need llama.cpp's "
                        "`llama-quantize`.")
            with gr.Row():
                gguf_quant = gr.Dropdown(["f16", "bf16", "q8_0", "q4_k_m"], value="q8_0", label="Quantization",
                                         elem_id="gguf-quant", scale=1)
                gguf = gr.Button("Export GGUF", elem_id="export-gguf", scale=1)
            gguf_files = gr.File(label="GGUF and Modelfile", file_count="multiple", interactive=False, visible=False,
                                 elem_id="gguf-files")
        with gr.Accordion("Serve: an OpenAI-compatible API", open=False):
            gr.Markdown("The run behind `transformers serve` on this machine (loopback): any OpenAI client talks to "
                        "it, the model name is the run's name. The same from a terminal: `studio serve RUN`.")
            with gr.Row():
                serve = gr.Button("Serve this run", elem_id="serve-start", interactive=policy().serves)
                serve_stop = gr.Button("Stop serving", elem_id="serve-stop", interactive=policy().serves)
            serve_status = gr.Markdown("Not offered on a public deployment (the operator can run `studio serve`)."
                                       if not policy().serves else "", elem_id="serve-status")
            serve_curl = gr.Code(language="shell", label="curl", interactive=False, visible=False,
                                 elem_id="serve-curl")
            serve_python = gr.Code(language="python", label="Python (openai)", interactive=False, visible=False,
                                   elem_id="serve-python")
        with gr.Accordion("Push to the Hugging Face Hub", open=False):
            with gr.Row():
                repo = gr.Textbox(label="Repo id", placeholder="you/my-adapter")
                # a public deployment takes a token only from the visitor's Hugging Face login, never a form field
                token = gr.Textbox(label="Token (or set HF_TOKEN)", type="password",
                                   visible=policy().lends_operator_token)
                private = gr.Checkbox(True, label="Private")
            push = gr.Button("Push the adapter zip's contents")
    return ExportTab(page, run, adapter, merged, quantize, status, table, repo, token, private, push, gguf_quant, gguf,
                     gguf_files, serve, serve_stop, serve_status, serve_curl, serve_python)


def quant_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([[r["export"], round(r["size_mb"], 2), round(r["tokens_per_s"]), round(r["perplexity"], 4)]
                         for r in rows], columns=["export", "size (MB)", "generation tokens/s", "perplexity"])


class Handlers:
    def __init__(self, t: ExportTab, ctx: Context):
        self.t, self.ctx = t, ctx

    def run_of(self, k, name, request):
        self.ctx.session(k, request)
        run = gate.own_run(name)
        if run is None:
            raise gr.Error("Pick a trained run first.", print_exception=False)
        return run

    def run_choices(self, k, current, just, request: gr.Request):
        return gr.Dropdown(**self.ctx.trained(k, current, just, request))

    def prepare(self, k, name, request: gr.Request):
        """The zip is built as soon as a run is chosen (a second at most), so Download is one click that downloads;
        it is handed to this visitor alone (``deliver``)."""
        self.ctx.session(k, request)
        run = gate.own_run(name)
        if run is None:
            return gr.DownloadButton(value=None, interactive=False), "Pick a trained run."
        if not (runs.Run(run).adapter / "adapter_model.safetensors").is_file():
            return (gr.DownloadButton(value=None, interactive=False),
                    "This run is a full fine-tune: it has no adapter; use **Merge into the base** for the model.")
        path = E.export_adapter(run, votes=self.card_votes())
        return (gr.DownloadButton(value=deliver(path), interactive=True),
                f"`{path.name}` is ready ({path.stat().st_size / 2**20:.1f} MB): the adapter, its model card and "
                "config. **Download** saves it.")

    @staticmethod
    def card_votes() -> list[dict]:
        """The votes a card may count: on a public deployment only those between this visitor's own runs and the
        base (the card's rule then keeps those on the run itself: ``card.run_leaderboard``)."""
        return Scope.of(gate.current().owner).votes(people_votes())  # the rating pool's and the campaigns'

    @staticmethod
    def export_job(progress, doing: str, kind: str, run, job, *args, detail: str = "", **kwargs):
        """An export job with its progress against this machine's last one of the kind for the model's shape."""
        shape = f"{timing.shape_of_run(run)}{' | ' + detail if detail else ''}"
        return device_job(progress, doing, kind, shape, 1, job, *args, **kwargs)

    def merged(self, k, name, request: gr.Request, progress=gr.Progress()):
        run = self.run_of(k, name, request)
        r = self.export_job(progress, "merging the adapter into the base", "merge", run,
                       partial(E.export_merged, votes=self.card_votes()), run, what="the merge")
        return f"Merged model in `{policy().shown_path(r['path'])}`; max |logit difference| vs the adapter: " \
               f"{r['max_abs_logit_diff']:.2e}."

    def quantize(self, k, name, request: gr.Request, progress=gr.Progress()):
        run = self.run_of(k, name, request)
        rows = self.export_job(progress, "merging, quantizing and measuring", "quantize", run, E.quantization_table,
                               run, what="quantizing")
        paths = ", ".join(f"`{policy().shown_path(r['path'])}`" for r in rows[1:])
        return gr.Dataframe(quant_frame(rows), visible=True), f"Quantized exports: {paths}"

    def gguf(self, k, name, quant, request: gr.Request, progress=gr.Progress()):
        from studio.engine.export.gguf_export import export_gguf

        run = self.run_of(k, name, request)
        r = self.export_job(progress, f"writing the {quant} GGUF file", "gguf", run, export_gguf, run, quant,
                            detail=quant, what="the GGUF export")
        name = Path(r["path"]).name
        return (gr.File(value=[deliver(r["path"]), deliver(r["modelfile"])], visible=True),
                f"`{name}` ({r['size_mb']:.1f} MB, {quant}) and its Modelfile. Run it: `llama-cli -m {name} -cnv`, or "
                f"`ollama create my-model -f {Path(r['modelfile']).name}` then `ollama run my-model`.")

    def serve(self, k, name, request: gr.Request, progress=gr.Progress()):
        from studio.engine.export.serve import SERVED, expected_start_seconds

        gate.check_serving()
        run = self.run_of(k, name, request)
        owner = self.ctx.session(k, request).owner

        def start(started):
            started()  # not a device job: its clock starts now
            return SERVED.start(owner, run.name)

        r = timed(progress, "preparing the run (merging it once) and starting the server",
                  expected_start_seconds(run), start)
        return (f"✓ Serving **{r['run']}** at `{r['url']}` (OpenAI-compatible; model name `{r['run']}`).",
                gr.Code(r["curl"], visible=True), gr.Code(r["python"], visible=True))

    def serve_stop(self, k, request: gr.Request):
        from studio.engine.export.serve import SERVED

        stopped = SERVED.stop(self.ctx.session(k, request).owner)
        return ("Stopped." if stopped else "Nothing is being served."), gr.Code(visible=False), gr.Code(visible=False)

    def push(self, k, name, repo, token, private, request: gr.Request):
        if not (repo or "").strip():
            raise gr.Error("Type a repo id first.", print_exception=False)
        token = policy().push_token(token, oauth_token(request))
        zip_path = E.export_adapter(self.run_of(k, name, request), votes=self.card_votes())
        return f"Pushed: {E.push_to_hub(zip_path, repo.strip(), token, private)}"


def wire(t: ExportTab, ctx: Context) -> None:
    h, key = Handlers(t, ctx), ctx.key
    t.page.select(h.run_choices, [key, t.run, ctx.current_run], t.run, api_visibility="private")
    gr.on([t.run.change, t.page.select], guard(h.prepare), [key, t.run], [t.adapter, t.status],
          api_name="export_adapter")
    t.merged.click(guard(h.merged), [key, t.run], t.status, api_name="export_merged")
    t.quantize.click(guard(h.quantize), [key, t.run], [t.table, t.status], api_name="export_quantized")
    t.push.click(guard(h.push), [key, t.run, t.repo, t.token, t.private], t.status, api_name="export_push")
    t.gguf.click(guard(h.gguf), [key, t.run, t.gguf_quant], [t.gguf_files, t.status], api_name="export_gguf")
    serving = [t.serve_status, t.serve_curl, t.serve_python]
    t.serve.click(guard(h.serve), [key, t.run], serving, api_name="export_serve")
    t.serve_stop.click(guard(h.serve_stop), key, serving, api_name="export_serve_stop")
