"""A run behind an OpenAI-compatible API: ``transformers serve``'s own server (its FastAPI app, handlers and
per-model processes), with the studio's runs as its models.

Contract: ``serve(runs, host, port, api_key)`` blocks, serving each run under its run name: ``GET /v1/models`` lists
them, ``POST /v1/chat/completions`` (``stream: true`` as server-sent events) and ``POST /v1/completions`` answer
with the run's own chat template and stop tokens; a request's ``model`` picks the run, another name is a 400. Each
run is served from a folder under ``STUDIO_HOME/serve/<run name>`` (``prepare``): the adapter merged into the base
(or a full fine-tune's weights), with a generation config that makes a temperature-0 answer the one ``studio
evaluate`` gives (the run's stop tokens, the same loop guard). With ``api_key``, a request without
``Authorization: Bearer <key>`` gets 401. Loopback by default; a public deployment never offers it to visitors (the
operator may serve from the CLI).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

from studio.engine import methods, runs
from studio.engine.errors import StudioError
from studio.settings import studio_home


def serve_root() -> Path:
    root = studio_home() / "serve"
    root.mkdir(parents=True, exist_ok=True)
    return root


MERGED: dict[str, float] = {}  # the seconds each run's merge took in this process (a start reports them)


def is_prepared(run: Path) -> bool:
    """Whether the run's served folder is made and newer than its weights (a start then merges nothing)."""
    done = serve_root() / run.name / "generation_config.json"
    weights = max((p.stat().st_mtime for p in run.rglob("*.safetensors")), default=0)
    return done.is_file() and done.stat().st_mtime > weights


def prepare(run_name: str) -> Path:
    """The folder a run is served from, made once per run (again when the run's weights are newer)."""
    from studio.config import EvalConfig
    from studio.engine.export import exporters as E
    from studio.engine.judge.generate import stop_ids

    run = runs.find_run(run_name)
    if run is None or not runs.has_weights(run):
        raise StudioError(f"{run_name}: no trained run of that name to serve (studio runs lists them)")
    folder = serve_root() / run.name
    if is_prepared(run):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    _, cfg = E._run(run)
    if methods.of(cfg).score_head:
        raise StudioError(f"{run.name} is a reward model: it scores answers instead of writing them, so there is "
                          "nothing to serve")
    merging = time.perf_counter()
    E.export_merged(run, folder)  # refuses, in one line, what cannot be merged (virtual-token methods)
    MERGED[run.name] = time.perf_counter() - merging
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    model_config = AutoConfig.from_pretrained(folder)
    if model_config.is_encoder_decoder or not any(a.endswith("ForCausalLM") for a in model_config.architectures or []):
        shutil.rmtree(folder, ignore_errors=True)
        raise StudioError(f"{run.name} is a {', '.join(model_config.architectures or ['model'])}: studio serve covers "
                          "chat and text models (causal language models); encoders and encoder-decoders are not "
                          "served")
    tok = AutoTokenizer.from_pretrained(folder)
    settings = EvalConfig()
    generation = GenerationConfig.from_model_config(model_config)
    generation.eos_token_id = stop_ids(SimpleNamespace(generation_config=generation), tok)  # end of turn too
    generation.pad_token_id = tok.pad_token_id
    generation.no_repeat_ngram_size = settings.no_repeat_ngram_size  # the loop guard evaluate and Chat use
    generation.repetition_penalty = settings.repetition_penalty
    generation.save_pretrained(folder)
    return folder


def build_app(run_names: list[str], api_key: str | None = None):
    """transformers serve's FastAPI app serving ``run_names`` (folders prepared; the process's working directory
    is the serve root, so a run's name is the path its model loads from)."""
    from transformers.cli.serve import Serve  # noqa: F401 - checks the serving extra is installed
    from transformers.cli.serving.chat_completion import ChatCompletionHandler
    from transformers.cli.serving.completion import CompletionHandler
    from transformers.cli.serving.model_manager import ModelLoader, ModelManager
    from transformers.cli.serving.response import ResponseHandler
    from transformers.cli.serving.server import build_server
    from transformers.cli.serving.systemone import SystemOneHandler
    from transformers.cli.serving.transcription import TranscriptionHandler
    from transformers.cli.serving.utils import GenerationState, ModelNotServedError

    served = list(run_names)

    class Runs(ModelManager):
        def get_engine(self, model: str | None):
            if model not in served:
                raise ModelNotServedError(f"model {model!r} is not served here; ask for one of: {', '.join(served)}")
            return super().get_engine(model)

        def list_models(self, cache_dir: str | None = None) -> list[dict]:
            loaded = {name for name, engine in self.engines.items() if engine.process_running}
            return [{"id": name, "object": "model", "created": 0, "owned_by": "studio",
                     "status": {"value": "loaded" if name in loaded else "unloaded"}} for name in served]

    state = GenerationState()
    manager = Runs(ModelLoader(device="auto", dtype="auto", trust_remote_code=False), state, model_timeout=-1)
    app = build_server(manager, ChatCompletionHandler(model_manager=manager, generation_state=state),
                       completion_handler=CompletionHandler(model_manager=manager, generation_state=state),
                       response_handler=ResponseHandler(model_manager=manager, generation_state=state),
                       transcription_handler=TranscriptionHandler(manager),
                       systemone_handler=SystemOneHandler(model_manager=manager, generation_state=state))
    if api_key:
        _require_key(app, api_key)
    return app


def _require_key(app, api_key: str) -> None:
    import hmac

    from fastapi.responses import JSONResponse

    @app.middleware("http")
    async def key_check(request, call_next):
        given = request.headers.get("authorization", "")
        if request.url.path != "/health" and not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            return JSONResponse({"error": {"message": "a valid API key is needed (Authorization: Bearer <key>)",
                                           "type": "invalid_request_error", "code": "invalid_api_key"}},
                                status_code=401)
        return await call_next(request)


def snippets(base_url: str, run_name: str, api_key: str | None = None) -> dict[str, str]:
    """What a user pastes to talk to a served run: a curl line and the openai client in Python."""
    import json

    body = json.dumps({"model": run_name, "messages": [{"role": "user", "content": "Hello!"}], "temperature": 0})
    auth = f" -H 'Authorization: Bearer {api_key}'" if api_key else ""
    curl = f"curl {base_url}/chat/completions -H 'Content-Type: application/json'{auth} -d '{body}'"
    python = (f"from openai import OpenAI\n\nclient = OpenAI(base_url={base_url!r}, api_key={api_key or 'unused'!r})\n"
              f"reply = client.chat.completions.create(model={run_name!r}, temperature=0,\n"
              f"    messages=[{{'role': 'user', 'content': 'Hello!'}}])\nprint(reply.choices[0].message.content)")
    return {"curl": curl, "python": python}


def serve(run_names: list[str], host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          ready=None, prepared=None) -> None:
    """Prepare each run's folder (``prepared(names)`` once they are merged), then serve them until stopped
    (Ctrl+C / SIGTERM)."""
    import uvicorn

    from studio.policy import policy

    if not policy().serves and host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        raise StudioError("on a public deployment a server beyond loopback needs --api-key")
    names = [prepare(name).name for name in run_names]
    if prepared is not None:
        prepared(names, sum(MERGED.get(n, 0.0) for n in names))
    os.chdir(serve_root())  # a run's name is now the local path its model loads from
    app = build_app(names, api_key)
    if ready is not None:
        ready(names)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).run()


def expected_start_seconds(run: Path) -> float | None:
    """How long starting a server for this run should take here: a server's start, and before it the run's merge
    where it is not merged for serving yet (each as this machine measured it; None: not measured yet)."""
    from studio.engine import timing

    shape = timing.shape_of_run(run)
    start = timing.expected("serve", shape, 1)
    merge = 0.0 if is_prepared(run) else timing.expected("serve_merge", shape, 1)
    return None if start is None or merge is None else start + merge


class Served:
    """A ``studio serve`` process started from the app (the Export tab): one per owner, on a free loopback port,
    stopped by ``stop`` or when the app exits."""

    def __init__(self):
        import threading

        self._lock, self._by_owner = threading.Lock(), {}

    def start(self, owner: str | None, run_name: str, timeout: float = 300.0) -> dict:
        import socket
        import subprocess
        import sys

        from studio.engine import timing

        self.stop(owner)
        clock, folder = time.perf_counter(), runs.find_run(run_name, owner)
        merging, merge = folder is not None and not is_prepared(folder), None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        process = subprocess.Popen([sys.executable, "-m", "studio", "serve", run_name, "--port", str(port)],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True, cwd=str(Path(__file__).resolve().parents[3]))
        said, deadline = [], time.time() + timeout
        for line in process.stdout:  # "prepared NAME (merged in S s)", then "serving NAME at URL" once ready
            said.append(line.strip())
            if line.startswith("prepared ") and "(merged in " in line:
                merge = float(line.rsplit("(merged in ", 1)[1].split(" s)")[0])
            if line.startswith("serving ") or time.time() > deadline or process.poll() is not None:
                break
        if not said or not said[-1].startswith("serving "):
            process.kill()
            reason = next((s for s in reversed(said) if s.startswith(("error:", "Error"))), said[-1] if said else "")
            raise StudioError(f"the server did not start: {reason}")
        _drain(process)
        while time.time() < deadline:  # the app is built; wait for the port to answer
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        base = f"http://127.0.0.1:{port}/v1"
        if folder is not None and merge is not None:  # the next start's estimate: the merge, the start without it
            shape = timing.shape_of_run(folder)
            if merging:
                timing.record("serve_merge", shape, 1, merge)
            timing.record("serve", shape, 1, time.perf_counter() - clock - (merge if merging else 0.0))
        with self._lock:
            self._by_owner[owner] = (process, run_name, base)
        return {"run": run_name, "url": base, **snippets(base, run_name)}

    def stop(self, owner: str | None) -> bool:
        import os
        import signal

        with self._lock:
            entry = self._by_owner.pop(owner, None)
        if entry is None:
            return False
        process = entry[0]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except Exception:  # noqa: BLE001 - it would not stop: make it
                os.killpg(process.pid, signal.SIGKILL)
        return True

    def stop_all(self) -> None:
        for owner in list(self._by_owner):
            self.stop(owner)


def _drain(process) -> None:
    """Keep reading the server's output so a full pipe never stalls it."""
    import threading

    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True, name="studio-serve-log").start()


SERVED = Served()
