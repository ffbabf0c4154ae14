"""A run as one GGUF file for llama.cpp and Ollama, written offline with llama.cpp's own Python library (``gguf``).

Contract: ``export_gguf(run, quant="f16", out=None) -> dict`` merges the run (``exporters.merged_model``), maps
its tensors to llama.cpp's names (``gguf.get_tensor_name_map``), stores f16 / bf16 / q8_0 with ``gguf.quants``
(norms stay f32, as llama.cpp keeps them), and writes the tokenizer (byte-level BPE: vocabulary, merges, special
ids) and the chat template into the metadata, then an Ollama ``Modelfile`` beside the file. ``q4_k_m`` and the
other k-quants need llama.cpp's C++ quantizer: ``llama-quantize`` is used when it is on PATH (from the f16 file),
else one line says how to get it. What the writer does not cover is refused in one line (``StudioError``):
architectures other than the Llama family (Llama, Mistral, Qwen2, studio-tiny), sentencepiece tokenizers, reward
and masked-LM runs. ``transformers`` loads the file back (``gguf_file=``): the tests compare it with the merged
model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from studio.engine.errors import StudioError

QUANTS = ("f16", "bf16", "q8_0", "q4_k_m", "q5_k_m", "q6_k")
NATIVE = ("f16", "bf16", "q8_0")  # what gguf-py quantizes itself
ARCH = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}
PERMUTED = {"llama"}  # llama.cpp's converter interleaves q/k rows for its rope; Qwen2 keeps them
LLAMA_QUANTIZE = "llama-quantize"


def export_gguf(run_dir: str | Path, quant: str = "f16", out: str | Path | None = None) -> dict:
    from studio.engine.export import exporters as E

    if quant not in QUANTS:
        raise StudioError(f"--quant {quant}: choose one of {', '.join(QUANTS)}")
    if quant not in NATIVE and shutil.which(LLAMA_QUANTIZE) is None:
        raise StudioError(f"--quant {quant} needs llama.cpp's {LLAMA_QUANTIZE} on PATH (build llama.cpp, or `brew "
                          f"install llama.cpp`), or choose f16, bf16 or q8_0, which the studio writes itself")
    run, cfg = E._run(run_dir)
    model, tok = E.merged_model(run, cfg)
    target = Path(out) if out else E.export_root() / f"{run.name}-{quant}.gguf"
    target.parent.mkdir(parents=True, exist_ok=True)
    first = target if quant in NATIVE else target.with_name(target.stem + "-f16.gguf")
    arch = write_gguf(model, tok, first, quant if quant in NATIVE else "f16", run.name)
    if quant not in NATIVE:
        done = subprocess.run([shutil.which(LLAMA_QUANTIZE), str(first), str(target), quant.upper()],
                              capture_output=True, text=True)
        first.unlink(missing_ok=True)
        if done.returncode != 0:
            raise StudioError(f"{LLAMA_QUANTIZE} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    modelfile = target.with_suffix(".Modelfile")
    modelfile.write_text(ollama_modelfile(target.name, tok))
    return {"path": str(target), "modelfile": str(modelfile), "size_mb": target.stat().st_size / 2**20,
            "quant": quant, "arch": arch}


def write_gguf(model, tok, path: Path, quant: str, name: str) -> str:
    """One merged causal LM and its tokenizer as a GGUF file (``quant`` in f16 / bf16 / q8_0); its llama.cpp
    architecture name."""
    arch = ARCH.get((model.config.architectures or [type(model).__name__])[0]) or ARCH.get(type(model).__name__)
    if arch is None:
        raise StudioError(f"{name} is a {type(model).__name__}: GGUF export covers the Llama family (Llama, "
                          "Mistral, Qwen2, studio-tiny); export it merged and use llama.cpp's convert_hf_to_gguf.py")
    _write(path, model, tok, _vocabulary(tok, model.config.vocab_size), arch, quant, name)
    return arch


# -- tokenizer ---------------------------------------------------------------------------------------------------
def _vocabulary(tok, vocab_size: int) -> dict:
    """Tokens by id, their types, the merges and llama.cpp's pre-tokenizer name, from tokenizer.json."""
    data = json.loads(tok.backend_tokenizer.to_str())
    model = data["model"]
    if model.get("type") != "BPE" or not _byte_level(data):
        raise StudioError("GGUF export covers byte-level BPE tokenizers (GPT-2, Llama 3, Qwen2, studio-tiny); this "
                          "one is sentencepiece or another kind: export it merged and use llama.cpp's "
                          "convert_hf_to_gguf.py")
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [5] * vocab_size  # UNUSED until filled
    for text, i in model["vocab"].items():
        if i < vocab_size:
            tokens[i], types[i] = text, 1  # NORMAL
    special = set(tok.all_special_tokens)
    for added in data.get("added_tokens", []):
        i = added["id"]
        if i < vocab_size:
            tokens[i] = added["content"]  # as written, as llama.cpp's converter stores added tokens
            types[i] = 3 if added.get("special") or added["content"] in special else 4  # CONTROL / USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return {"tokens": tokens, "types": types, "merges": merges, "pre": _pre_tokenizer(data)}


def _byte_level(data: dict) -> bool:
    text = json.dumps(data.get("pre_tokenizer")) + json.dumps(data.get("decoder"))
    return '"ByteLevel"' in text


def _pre_tokenizer(data: dict) -> str:
    """llama.cpp's name for how text is split before the merges (``tokenizer.ggml.pre``): Llama 3's split
    (digits in threes), Qwen2's (digits one by one), or GPT-2's own ByteLevel regex (studio-tiny's)."""
    text = json.dumps(data.get("pre_tokenizer"))
    if '"Split"' not in text:
        return "gpt2"
    if "\\\\p{N}{1,3}" in text:
        return "llama-bpe"
    if "\\\\p{N}|" in text:
        return "qwen2"
    raise StudioError("GGUF export: this tokenizer splits text in a way llama.cpp's names do not cover yet; export "
                      "it merged and use llama.cpp's convert_hf_to_gguf.py")


# -- tensors -----------------------------------------------------------------------------------------------------
def _permute(w: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """llama.cpp's q/k row order for its rope (convert_hf_to_gguf.py's LlamaModel.permute)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensors(model, arch: str):
    import gguf

    c = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], c.num_hidden_layers)
    state = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    if getattr(c, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # llama.cpp reads a missing output.weight as the embedding
    for hf_name, array in state.items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise StudioError(f"GGUF export: no llama.cpp name for tensor {hf_name}")
        if arch in PERMUTED and hf_name.endswith("q_proj.weight"):
            array = _permute(array, c.num_attention_heads, c.num_attention_heads)
        elif arch in PERMUTED and hf_name.endswith("k_proj.weight"):
            array = _permute(array, c.num_attention_heads, c.num_key_value_heads)
        yield name, array


def _stored(name: str, array: np.ndarray, quant: str):
    """(data, ggml type): 1-D tensors (norms, biases) stay f32; q8_0 needs rows in blocks of 32."""
    import gguf

    T = gguf.GGMLQuantizationType
    if array.ndim == 1:
        return array.astype(np.float32), T.F32
    kind = {"f16": T.F16, "bf16": T.BF16, "q8_0": T.Q8_0}[quant]
    if kind == T.Q8_0 and array.shape[-1] % 32:
        kind = T.F16
    if kind == T.F16:
        return array.astype(np.float16), T.F16
    return gguf.quants.quantize(array.astype(np.float32), kind), kind


def _write(path: Path, model, tok, vocab: dict, arch: str, quant: str, name: str) -> None:
    import gguf

    c = model.config
    heads, head_dim = c.num_attention_heads, getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    rope = (getattr(c, "rope_parameters", None) or {}).get("rope_theta") or getattr(c, "rope_theta", 10000.0)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(name)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_freq_base(float(rope))
    w.add_layer_norm_rms_eps(float(c.rms_norm_eps))
    w.add_rope_dimension_count(head_dim)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_vocab_size(c.vocab_size)
    w.add_file_type({"f16": gguf.LlamaFileType.MOSTLY_F16, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
                     "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quant])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(vocab["pre"])
    w.add_token_list(vocab["tokens"])
    w.add_token_types(vocab["types"])
    w.add_token_merges(vocab["merges"])
    for setter, token_id in ((w.add_bos_token_id, tok.bos_token_id), (w.add_eos_token_id, tok.eos_token_id),
                             (w.add_pad_token_id, tok.pad_token_id)):
        if token_id is not None:
            setter(int(token_id))
    w.add_add_bos_token(bool(getattr(tok, "add_bos_token", False)) and tok.bos_token_id is not None)
    if tok.chat_template:
        w.add_chat_template(tok.chat_template)
    for tensor_name, array in _tensors(model, arch):
        data, kind = _stored(tensor_name, array, quant)
        w.add_tensor(tensor_name, data, raw_dtype=kind)  # quantized bytes carry their own shape
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# -- Ollama ------------------------------------------------------------------------------------------------------
CHATML = ("{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ range .Messages }}"
          "<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n")


def ollama_modelfile(gguf_name: str, tok) -> str:
    """FROM the file, a TEMPLATE in Go's syntax for the run's chat template (ChatML, the studio's, is written out;
    another template is named for the user to port), and the end-of-turn tokens as stops."""
    template = tok.chat_template or ""
    chatml = "<|im_start|>" in template
    stops = ["<|im_end|>"] if chatml else []
    if tok.eos_token and tok.eos_token not in stops:
        stops.append(tok.eos_token)
    lines = [f"FROM ./{gguf_name}"]
    if chatml:
        lines.append(f'TEMPLATE """{CHATML}"""')
    else:
        lines.append("# The run's chat template is not ChatML: write its TEMPLATE in Go's syntax (ollama.com/docs)")
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    lines.append("PARAMETER temperature 0")
    return "\n".join(lines) + "\n"
