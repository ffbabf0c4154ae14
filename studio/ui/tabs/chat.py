"""Chat tab: pick a run, type a message, and see base and tuned answer side by side, streamed token by
token, with their own multi-turn histories and the generation settings at hand."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio.config import EvalConfig
from studio.engine import gate, runs
from studio.engine.device import exclusive_on_gpu
from studio.engine.judge.chat import answers, replies, text_of
from studio.policy import policy
from studio.settings import settings as deployment
from studio.ui.handlers import guard
from studio.ui.state import Context

CHAT_SECONDS = deployment().chat_seconds  # one answer pair, public mode


@dataclass
class ChatTab:
    page: gr.Tab
    run: gr.Dropdown
    base: gr.Chatbot
    tuned: gr.Chatbot
    message: gr.Textbox
    send: gr.Button
    clear: gr.Button
    max_tokens: gr.Slider
    sample: gr.Checkbox
    temperature: gr.Slider
    system: gr.Textbox


def build() -> ChatTab:
    with gr.Tab("Chat") as page:
        gr.Markdown("### 5. Chat with base and tuned\nThe same message goes to both; each keeps its own history.")
        run = gr.Dropdown(choices=runs.chat_runs(), label="Run", allow_custom_value=True, elem_id="chat-run")
        with gr.Row():
            base = gr.Chatbot(label="Base", elem_id="chat-base", height=380)
            tuned = gr.Chatbot(label="Tuned", elem_id="chat-tuned", height=380)
        with gr.Row():
            message = gr.Textbox(placeholder="Type a message and press Enter", show_label=False, scale=5,
                                 elem_id="chat-message")
            send = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send")
            clear = gr.Button("Clear", scale=1)
        with gr.Accordion("Generation settings", open=False):
            with gr.Row():
                max_tokens = gr.Slider(8, 512, 128, step=8, label="max new tokens")
                sample = gr.Checkbox(False, label="sample (else greedy)")
                temperature = gr.Slider(0.1, 2.0, 0.7, step=0.1, label="temperature")
            system = gr.Textbox("", label="System message (optional)")
    return ChatTab(page, run, base, tuned, message, send, clear, max_tokens, sample, temperature, system)


class Handlers:
    def __init__(self, t: ChatTab, ctx: Context):
        self.t, self.ctx = t, ctx

    def run_choices(self, k, current, just, request: gr.Request):
        return gr.Dropdown(**self.ctx.trained(k, current, just, request, chat=True))

    def send(self, k, run_name, message, base, tuned, max_tokens, sample, temperature, system,
             request: gr.Request):
        self.ctx.session(k, request)
        run = gate.own_run(run_name)
        if run is None:
            raise gr.Error("Pick a trained run first (train one in the Train tab).", print_exception=False)
        if not (message or "").strip():
            raise gr.Error("Type a message first.", print_exception=False)
        message = gate.capped_text(message)
        settings = gate.capped(EvalConfig(max_new_tokens=int(max_tokens), do_sample=bool(sample),
                                          temperature=float(temperature)))
        histories = {"base": list(base or []), "tuned": list(tuned or [])}
        for side in histories:
            histories[side] += [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        yield "", histories["base"], histories["tuned"]
        head = [{"role": "system", "content": system}] if (system or "").strip() else []
        convos = {side: head + [{"role": m["role"], "content": text_of(m["content"])} for m in h[:-1]]
                  for side, h in histories.items()}
        if policy().isolates_jobs:  # in a child with the deployment's limits; one message a visitor at once
            with gate.solo("chat", "Your previous message"):
                said = gate.device_job(answers, run, convos, settings, device=False, seconds=CHAT_SECONDS,
                                       what="the answer")
            for side, text in said.items():
                histories[side][-1] = {"role": "assistant", "content": text}
            yield gr.skip(), histories["base"], histories["tuned"]
            return
        with exclusive_on_gpu():
            for texts in replies(run, convos, settings):
                for side, text in texts.items():
                    histories[side][-1] = {"role": "assistant", "content": text}
                yield gr.skip(), histories["base"], histories["tuned"]


def wire(t: ChatTab, ctx: Context) -> None:
    h = Handlers(t, ctx)
    t.page.select(h.run_choices, [ctx.key, t.run, ctx.current_run], t.run, api_visibility="private")
    inputs = [ctx.key, t.run, t.message, t.base, t.tuned, t.max_tokens, t.sample, t.temperature, t.system]
    outputs = [t.message, t.base, t.tuned]
    t.send.click(guard(h.send), inputs, outputs, api_name="chat", concurrency_limit=4, concurrency_id="chat")
    t.message.submit(guard(h.send), inputs, outputs, api_visibility="private", concurrency_limit=4,
                     concurrency_id="chat")
    t.clear.click(lambda: ([], []), None, [t.base, t.tuned], api_visibility="private")
