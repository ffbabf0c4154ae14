"""Getting the result out: the adapter as a zip with a model card, a merged model, quantized
models with a size / speed / perplexity table, and a push to the hub.

Contract: every export is written aside and renamed into place (``os.replace``), into the
studio's export folder unless a path is given; ``export_adapter`` gives a zip that loads with
plain transformers + peft (its ``adapter_config.json`` names a loadable base), ``export_merged``
checks merged logits against adapter logits and reports the largest difference.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from studio.config import StudioConfig
from studio.engine import methods
from studio.engine.errors import ModelError, StudioError
from studio.engine.export.card import base_reference, latest_eval, model_card, portable_config, run_leaderboard
from studio.engine.models import load_tuned
from studio.engine.runs import as_user_made, write_atomic
from studio.policy import OWN_TOKEN, policy
from studio.settings import studio_home

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "tokenizer.model", "vocab.json", "merges.txt")


def export_root() -> Path:
    """Where exports are written: ``STUDIO_HOME/exports``; on a public deployment a folder of the acting
    visitor's own under it. The web server never serves this folder: a download is handed out by the Export
    and Rate tabs to the visitor who made it (``ui/handlers.py: deliver``)."""
    from studio.engine import runs

    root = studio_home() / "exports"
    if policy().scoped:
        root = root / (runs.ACTING.get() or "_nobody")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _run(run_dir: str | Path) -> tuple[Path, StudioConfig]:
    from studio.engine import runs

    run = Path(run_dir)
    if not runs.is_run(run):
        raise StudioError(f"{run}: not a run directory (no {runs.CONFIG})")
    return run, runs.Run(run).config


def _atomic_dir(target: Path, fill) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        fill(tmp)
        as_user_made(tmp)
        for f in tmp.rglob("*"):
            as_user_made(f)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def export_adapter(run_dir: str | Path, out: str | Path | None = None, votes: list[dict] | None = None) -> Path:
    """The adapter, its model card (with the people's leaderboard from ``votes``, else the studio's ratings: see
    ``card.run_leaderboard``) and config, as one zip that loads with plain peft."""
    from studio.engine import runs

    run, cfg = _run(run_dir)
    adapter = runs.Run(run).adapter
    if not (adapter / "adapter_model.safetensors").is_file():
        raise StudioError(f"{run.name}: no adapter to export (a full fine-tune exports as merged)")
    out = Path(out) if out else export_root() / f"{run.name}-adapter.zip"
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = base_reference(cfg)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}-", dir=out.parent if out.parent.exists() else None)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(adapter / "adapter_model.safetensors", "adapter_model.safetensors")
            z.writestr("adapter_config.json", json.dumps(config, indent=2))
            for name in TOKENIZER_FILES:
                if (adapter / name).is_file():
                    z.write(adapter / name, name)
            leaderboard = run_leaderboard(run, votes)
            z.writestr("README.md", str(model_card(run, cfg, leaderboard=leaderboard)))
            z.writestr("studio-config.yaml", portable_config(cfg).to_yaml())
            summary = latest_eval(run)
            if summary:
                z.writestr("eval_summary.json", json.dumps(summary.to_dict(), indent=1))
            if leaderboard:
                z.writestr("human_leaderboard.json", json.dumps(leaderboard, indent=1))
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(as_user_made(Path(tmp)), out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def _load_tuned(run: Path, cfg: StudioConfig):
    """(tuned model in fp32, tokenizer): base + adapter, or the full fine-tune."""
    tuned = load_tuned(run)
    return tuned.model, tuned.tokenizer


def mergeable(run: Path, cfg: StudioConfig) -> None:
    """Raises, in one line, for a run whose weights cannot be merged into a plain language model."""
    method = methods.of(cfg)
    if method.score_head:
        raise StudioError(f"{run.name} is a reward model (a score head, not a language model head): export its "
                          "adapter, which PEFT loads onto AutoModelForSequenceClassification")
    if not method.merges:  # quantized exports start from the merged one: refused here too
        raise StudioError(f"a {method.name} run has no weights to merge (it trains virtual tokens in front of "
                          "the input): export the adapter, which PEFT loads onto the base")


def merged_model(run: Path, cfg: StudioConfig):
    """(the tuned model with its adapter merged in, fp32; its tokenizer), for a run whose weights can be merged."""
    mergeable(run, cfg)
    model, tok = _load_tuned(run, cfg)
    return (model.merge_and_unload() if hasattr(model, "merge_and_unload") else model), tok


def export_merged(run_dir: str | Path, out: str | Path | None = None, max_shard_size: str = "2GB",
                  votes: list[dict] | None = None) -> dict:
    """The adapter merged into the base (safetensors, sharded past ``max_shard_size``), checked: the
    merged model's logits against the adapter model's on a probe input."""
    import torch

    run, cfg = _run(run_dir)
    mergeable(run, cfg)
    model, tok = _load_tuned(run, cfg)
    probe = tok(["The studio merges the adapter into the base."], return_tensors="pt")
    with torch.no_grad():
        before = model(**probe).logits
    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    with torch.no_grad():
        diff = float((merged(**probe).logits - before).abs().max())
    target = Path(out) if out else export_root() / f"{run.name}-merged"

    def fill(tmp: Path) -> None:
        merged.save_pretrained(tmp, safe_serialization=True, max_shard_size=max_shard_size)
        tok.save_pretrained(tmp)
        card = model_card(run, cfg, votes)
        card.data.library_name = "transformers"  # merged: a plain transformers model
        card.save(tmp / "README.md")

    _atomic_dir(target, fill)
    return {"path": str(target), "max_abs_logit_diff": diff}


def size_on_disk(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def export_quantized(run_dir: str | Path, bits: int, out: str | Path | None = None,
                     merged: Path | None = None) -> Path:
    """The merged model re-loaded through bitsandbytes (8-bit, or 4-bit NF4) and saved so."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    run, _ = _run(run_dir)
    merged = merged or export_root() / f"{run.name}-merged"
    if not (merged / "config.json").is_file():
        export_merged(run, merged)
    q = BitsAndBytesConfig(load_in_8bit=True) if bits == 8 else BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32)
    device = {"": 0} if torch.cuda.is_available() else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(merged, quantization_config=q, device_map=device)
    tok = AutoTokenizer.from_pretrained(merged)
    target = Path(out) if out else export_root() / f"{run.name}-{'int8' if bits == 8 else 'nf4'}"

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)

    return _atomic_dir(target, fill)


def push_to_hub(folder_or_zip: str | Path, repo_id: str, token: str | None = None, private: bool = True) -> str:
    """Upload an export; offline or unauthorised says so in one line. On a public deployment only the
    visitor's own token pushes: the server's HF_TOKEN is never lent."""
    from huggingface_hub import HfApi
    from huggingface_hub import errors as hf

    if not token and not policy().lends_operator_token:
        raise ModelError(OWN_TOKEN)

    path = Path(folder_or_zip)
    work = path
    if path.suffix == ".zip":
        work = Path(tempfile.mkdtemp(prefix="push-"))
        with zipfile.ZipFile(path) as z:
            z.extractall(work)
    api = HfApi(token=token or policy().hub_token())  # locally None: HF_TOKEN or the saved login
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(work), repo_id=repo_id, commit_message="Upload from the studio")
    except hf.HfHubHTTPError as e:
        raise ModelError(f"push to {repo_id} refused: {str(e).splitlines()[0][:200]}") from None
    except Exception as e:  # noqa: BLE001 - the hub client raises its own transport errors (httpx2, OSError...)
        if isinstance(e, hf.LocalTokenNotFoundError) or "token" in str(e).lower():
            raise ModelError("push needs a token: log in or set HF_TOKEN") from None
        raise ModelError(f"push to {repo_id} failed: the hub cannot be reached (offline) ({type(e).__name__})") \
            from None
    return getattr(info, "commit_url", str(info))


def quantization_table(run_dir: str | Path, prompts: int = 16, new_tokens: int = 32, bits: tuple = (8, 4),
                       out: str | Path | None = None) -> list[dict]:
    """Size on disk, generation tokens/s and perplexity on the run's eval set: the merged model in fp32
    against its ``bits`` exports (the table the quantization lesson asks for); with ``out``, the exports go
    in that folder and the table beside them as ``table.json``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.engine.judge.evaluate import eval_set
    from studio.engine.judge.generate import generate, reference_nll

    run, cfg = _run(run_dir)
    folder = Path(out) if out else None
    merged = Path(export_merged(run, folder / "merged" if folder else None)["path"])
    pairs = eval_set(run, cfg, limit=prompts)
    qs, refs = [p for p, _ in pairs], [r for _, r in pairs]
    settings = cfg.eval.__class__(max_new_tokens=new_tokens, batch_size=8)
    rows = []
    names = {8: "int8", 4: "nf4"}
    exports = [("fp32 (merged)", merged),
               *[(names[b], export_quantized(run, b, folder / names[b] if folder else None, merged)) for b in bits],
               ("dynamic int8 (CPU)", merged)]
    for label, path in exports:
        quantized = label in ("int8", "nf4")
        model = AutoModelForCausalLM.from_pretrained(path, **({"device_map": {"": "cpu"}} if quantized
                                                               else {"dtype": torch.float32}))
        tok = AutoTokenizer.from_pretrained(path)
        size = size_on_disk(path)
        if label.startswith("dynamic"):
            # torch's dynamic int8 quantization for CPU inference: applied at load time, since its packed
            # weights only serialise as a pickle, which the studio does not write.
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            size = _state_dict_bytes(model)
        started = time.perf_counter()
        generate(model, tok, qs, settings, max_new_tokens=new_tokens, min_new_tokens=new_tokens)  # all full length
        speed = len(qs) * new_tokens / (time.perf_counter() - started)
        nll, n = reference_nll(model, tok, qs, refs)
        rows.append({"export": label, "path": str(path), "size_mb": size / 2**20,
                     "tokens_per_s": speed, "perplexity": math.exp(sum(nll) / max(sum(n), 1))})
    if folder:
        write_atomic(folder / "table.json", json.dumps(rows, indent=1))
    return rows


def _state_dict_bytes(model) -> int:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)  # in memory only: the size it would take
    return buf.tell()

