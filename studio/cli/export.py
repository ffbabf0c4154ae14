"""``studio export`` (adapter zip, merged, quantized, GGUF, push), ``studio serve`` (an OpenAI-compatible API) and
``studio tiny`` (the starter model as a folder)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def cmd_export(a: argparse.Namespace) -> int:
    from studio.engine.export import exporters as E

    run = Path(a.run_dir)
    if a.format == "adapter":
        print(f"adapter zip: {E.export_adapter(run, a.out)}")
    elif a.format == "gguf":
        from studio.engine.export.gguf_export import export_gguf

        r = export_gguf(run, a.quant, a.out)
        print(f"gguf ({r['quant']}, {r['arch']}): {r['path']} ({r['size_mb']:.1f} MB)\nOllama Modelfile: "
              f"{r['modelfile']}\nrun it: llama-cli -m {r['path']} -cnv   or   ollama create NAME -f {r['modelfile']}")
    elif a.format == "merged":
        r = E.export_merged(run, a.out)
        print(f"merged model: {r['path']} (max |logit difference| vs adapter: {r['max_abs_logit_diff']:.2e})")
    elif a.table:
        for row in E.quantization_table(run, bits=(a.bits,) if a.bits else (8, 4), out=a.out):
            print(f"{row['export']:14s} {row['size_mb']:8.2f} MB {row['tokens_per_s']:8.0f} tokens/s "
                  f"perplexity {row['perplexity']:.3f}")
    else:
        print(f"quantized model: {E.export_quantized(run, a.bits or 8, a.out)}")
    if a.push:
        target = a.out or (E.export_root() / f"{run.name}-adapter.zip")
        print(f"pushed: {E.push_to_hub(target, a.push, private=not a.public)}")
    return 0


def cmd_tiny(a: argparse.Namespace) -> int:
    """studio-tiny as an ordinary Hugging Face model folder, so an exported adapter finds its base anywhere."""
    from studio.config import ConfigError
    from studio.engine.tiny import ensure_studio_tiny
    from studio.settings import studio_home

    out = Path(a.out)
    if out.exists():
        raise ConfigError(f"{out} already exists; choose a new folder")
    shutil.copytree(ensure_studio_tiny(studio_home()), out)
    print(f"studio-tiny written to {out}")
    return 0


def cmd_serve(a: argparse.Namespace) -> int:
    from studio.engine.export.serve import serve, snippets
    from studio.settings import settings

    key = a.api_key or settings().serve_api_key or None

    def ready(names: list[str]) -> None:
        base = f"http://{a.host}:{a.port}/v1"
        print(f"serving {', '.join(names)} at {base} (OpenAI-compatible; Ctrl+C stops)", flush=True)
        print(snippets(base, names[0], key)["curl"], flush=True)

    def prepared(names: list[str], merge_s: float) -> None:
        print(f"prepared {', '.join(names)} (merged in {merge_s:.2f} s)", flush=True)

    serve(a.runs, a.host, a.port, key, ready=ready, prepared=prepared)
    return 0


def add_commands(sub) -> None:
    s = sub.add_parser("export", help="adapter zip, merged model, quantized model or GGUF (llama.cpp / Ollama)")
    s.add_argument("run_dir")
    s.add_argument("--format", choices=["adapter", "merged", "quantized", "gguf"], default="adapter")
    s.add_argument("--quant", default="f16", choices=["f16", "bf16", "q8_0", "q4_k_m", "q5_k_m", "q6_k"],
                   help="gguf: f16 (default), bf16 and q8_0 are written by the studio; the k-quants need llama.cpp's "
                        "llama-quantize on PATH")
    s.add_argument("--out", help="where to write it (default: STUDIO_HOME/exports/); with --table, a folder for the "
                                 "exports and table.json")
    s.add_argument("--bits", type=int, choices=[8, 4],
                   help="quantized: 8-bit (the default) or 4-bit NF4; with --table, only that one is measured")
    s.add_argument("--table", action="store_true", help="quantized: size, speed and perplexity of fp32/int8/nf4")
    s.add_argument("--push", metavar="REPO_ID", help="also push to the hub (private unless --public)")
    s.add_argument("--public", action="store_true")
    s.set_defaults(fn=cmd_export)
    s = sub.add_parser("serve", help="serve runs over an OpenAI-compatible API (transformers serve)")
    s.add_argument("runs", nargs="+", metavar="RUN", help="run names (studio runs lists them); the API's model names")
    s.add_argument("--host", default="127.0.0.1", help="loopback by default")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--api-key", help="require Authorization: Bearer KEY (or set STUDIO_SERVE_API_KEY)")
    s.set_defaults(fn=cmd_serve)
    s = sub.add_parser("tiny", help="write studio-tiny (the offline starter model) as a model folder")
    s.add_argument("--out", default="studio-tiny")
    s.set_defaults(fn=cmd_tiny)
