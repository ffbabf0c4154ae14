"""A run as one GGUF file for llama.cpp and Ollama, written offline with llama.cpp's own Python library (``gguf``).

Contract: ``export_gguf(run, quant="f16", out=None) -> dict`` merges the run (``exporters.merged_model``), maps
its tensors to llama.cpp's names (``gguf.get_tensor_name_map``), stores f16 / bf16 / q8_0 with ``gguf.quants``
(norms stay f32, as llama.cpp keeps them), and writes the tokenizer as llama.cpp reads it: vocabulary, merges, the
pre-tokenizer by llama.cpp's own name (``gpt-2``, ``llama-bpe``, ``qwen2``), bos / eos / end-of-turn / padding
ids as the tokenizer and its chat template define them, and the chat template without transformers-only tags;
then an Ollama ``Modelfile`` beside the file whose Go TEMPLATE renders chats as the chat template does.
``q4_k_m`` and the other k-quants need llama.cpp's C++ quantizer: ``llama-quantize`` is used when it is on PATH
(from the f16 file), else one line says how to get it. What the writer does not cover is refused in one line
(``StudioError``): architectures other than the Llama family (Llama, Mistral, Qwen2, studio-tiny), sentencepiece
tokenizers and splits llama.cpp has no name for, reward and masked-LM runs. The tests run llama.cpp itself on the
files (tests/test_gguf.py).
"""

from __future__ import annotations

import json
import re
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
    return {"tokens": tokens, "types": types, "merges": merges, "pre": _pre_tokenizer(data), "ids": _special_ids(tok)}


def _byte_level(data: dict) -> bool:
    text = json.dumps(data.get("pre_tokenizer")) + json.dumps(data.get("decoder"))
    return '"ByteLevel"' in text


# llama.cpp's names for how text is split before the merges (``tokenizer.ggml.pre``, llama-vocab.cpp), each by the
# exact split pattern of the tokenizer family it names; llama.cpp applies its own copy of the pattern, so a
# tokenizer that splits in any other way would be tokenized differently there and is refused.
_WORDS = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|"
_REST = r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_SPLITS = {_WORDS + r"\p{N}{1,3}" + _REST: "llama-bpe",  # Llama 3: digits in threes
           _WORDS + r"\p{N}" + _REST: "qwen2"}  # Qwen2 / Qwen2.5: digits one by one


def _pre_tokenizer(data: dict) -> str:
    """llama.cpp's name for the tokenizer's split: ``gpt-2`` for GPT-2's own ByteLevel regex (studio-tiny's), else
    the name of the Llama 3 or Qwen2 split pattern it uses."""
    pre = data.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    byte_level = [s for s in steps if s.get("type") == "ByteLevel"]
    splits = [s for s in steps if s.get("type") == "Split"]
    if len(steps) == 1 and byte_level and byte_level[0].get("use_regex", True) \
            and not byte_level[0].get("add_prefix_space"):
        return "gpt-2"
    if len(steps) == 2 and len(splits) == 1 and byte_level and not byte_level[0].get("use_regex", True):
        name = _SPLITS.get((splits[0].get("pattern") or {}).get("Regex"))
        keeps = (splits[0].get("behavior"), bool(splits[0].get("invert")))  # two spellings of "keep each match"
        if name and keeps in (("Isolated", False), ("Removed", True)):
            return name
    raise StudioError("GGUF export: this tokenizer splits text in a way llama.cpp's names do not cover yet (the "
                      "studio knows GPT-2's, Llama 3's and Qwen2's); export it merged and use llama.cpp's "
                      "convert_hf_to_gguf.py")


def _special_ids(tok) -> dict:
    """The ids llama.cpp reads from the file instead of guessing them from token names: bos (the tokenizer's, else
    its ``<|endoftext|>`` or eos, as llama.cpp's converter writes for Qwen2), eos, eot (the token the chat template
    closes an assistant turn with, written even when it is eos, so llama.cpp does not pick one by name), padding,
    and whether a bos starts every text."""
    eos = tok.eos_token_id
    separator = tok.convert_tokens_to_ids("<|endoftext|>") if "<|endoftext|>" in tok.get_vocab() else None
    bos = next((i for i in (tok.bos_token_id, separator, eos) if i is not None), None)
    ids = {"bos": bos, "eos": eos, "pad": tok.pad_token_id, "eot": end_of_turn(tok)}
    probe = tok("a")["input_ids"]
    ids["add_bos"] = tok.bos_token_id is not None and bool(probe) and probe[0] == tok.bos_token_id
    return ids


def end_of_turn(tok) -> int | None:
    """The special token right after an assistant's words in the tokenizer's chat template (``<|im_end|>`` for
    ChatML, ``<|eot_id|>`` for Llama 3), or None when the template has none or no template is set."""
    if not tok.chat_template:
        return None
    mark = "Zq7 answer"
    try:
        text = tok.apply_chat_template([{"role": "user", "content": "hello"}, {"role": "assistant", "content": mark}],
                                       tokenize=False)
    except Exception:  # a template that refuses this conversation: no turn to read
        return None
    after = text[text.rindex(mark) + len(mark):] if mark in text else ""
    special = set(tok.all_special_ids) | {i for i, t in tok.added_tokens_decoder.items() if t.special}
    for token_id in tok(after, add_special_tokens=False)["input_ids"]:
        if token_id in special:
            return int(token_id)
        if tok.decode([token_id]).strip():
            return None  # words before any special token: the template has no end-of-turn token
    return None


_GENERATION_TAG = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")


def llama_cpp_template(template: str) -> str:
    """The chat template as llama.cpp's Jinja engine reads it: without transformers' own ``{% generation %}``
    markers (they only mark the assistant's tokens for training and render to nothing)."""
    return _GENERATION_TAG.sub("", template)


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
    ids = vocab["ids"]
    for setter, key in ((w.add_bos_token_id, "bos"), (w.add_eos_token_id, "eos"), (w.add_eot_token_id, "eot"),
                        (w.add_pad_token_id, "pad")):
        if ids[key] is not None:
            setter(int(ids[key]))
    w.add_add_bos_token(ids["add_bos"])
    w.add_add_eos_token(False)
    if tok.chat_template:
        w.add_chat_template(llama_cpp_template(tok.chat_template))
    for tensor_name, array in _tensors(model, arch):
        data, kind = _stored(tensor_name, array, quant)
        w.add_tensor(tensor_name, data, raw_dtype=kind)  # quantized bytes carry their own shape
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# -- Ollama ------------------------------------------------------------------------------------------------------
# Ollama renders a chat with a Go template over its messages (system messages included, the Modelfile's SYSTEM put
# first when the chat has none). Each chat form is one turn and the generation prompt; its Go template and what that
# template renders (``_renders``) both come from it, and a form is written only when the run's own chat template
# renders the probe chats exactly so (tests/ollama_template renders the Go template with Go to check).
CHAT_FORMS = {  # name: (one turn, with ROLE and CONTENT in it; the generation prompt)
    "chatml": ("<|im_start|>ROLE\nCONTENT<|im_end|>\n", "<|im_start|>assistant\n"),
    "llama3": ("<|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|>",
               "<|start_header_id|>assistant<|end_header_id|>\n\n"),
}
PROBE_CHATS = (
    [{"role": "user", "content": "Name a river."}],
    [{"role": "system", "content": "Answer in one line."}, {"role": "user", "content": "Name a river."},
     {"role": "assistant", "content": "The Nile."}, {"role": "user", "content": "And a sea?"}],
)


def go_template(form: str) -> str:
    turn, prompt = CHAT_FORMS[form]
    return "{{ range .Messages }}" + turn.replace("ROLE", "{{ .Role }}").replace("CONTENT", "{{ .Content }}") + \
        "{{ end }}" + prompt


def _renders(form: str, chat: list[dict], system: str | None) -> str:
    """What Ollama gives for ``chat`` with the Go template of ``form`` (and the Modelfile's ``system``)."""
    turn, prompt = CHAT_FORMS[form]
    if system and chat[0]["role"] != "system":
        chat = [{"role": "system", "content": system}, *chat]
    return "".join(turn.replace("ROLE", m["role"]).replace("CONTENT", m["content"]) for m in chat) + prompt


def ollama_chat(tok, add_bos: bool) -> tuple[str, str | None] | None:
    """(the chat form's name, the default system prompt or None) that renders as the run's chat template does,
    or None when no form does. ``add_bos``: the bos is a token llama.cpp adds, not text of the template."""
    try:
        texts = [tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) for chat in PROBE_CHATS]
    except Exception:
        return None
    if tok.bos_token and add_bos:
        texts = [t.removeprefix(tok.bos_token) for t in texts]
    for form in CHAT_FORMS:
        system = None
        if texts[0] != _renders(form, PROBE_CHATS[0], None):  # perhaps a default system turn (Qwen2's): SYSTEM
            mark = "DefaultSystemMark"
            pattern = re.escape(_renders(form, PROBE_CHATS[0], mark)).replace(mark, "(.*)")
            match = re.fullmatch(pattern, texts[0], re.S)
            system = match.group(1) if match else None
        if all(_renders(form, chat, system) == text for chat, text in zip(PROBE_CHATS, texts)):
            return form, system
    return None


def ollama_modelfile(gguf_name: str, tok) -> str:
    """FROM the file, the TEMPLATE (and SYSTEM) in Go's syntax that renders chats as the run's chat template does
    (a template of another shape is named for the user to port), and the end-of-turn tokens as stops."""
    ids = _special_ids(tok)
    stops = list(dict.fromkeys(tok.convert_ids_to_tokens(i) for i in (ids["eot"], ids["eos"]) if i is not None))
    chat = ollama_chat(tok, ids["add_bos"])
    lines = [f"FROM ./{gguf_name}"]
    if chat:
        lines.append(f'TEMPLATE """{go_template(chat[0])}"""')
        if chat[1]:
            lines.append(f'SYSTEM """{chat[1]}"""')
    else:
        lines.append("# The run's chat template is neither ChatML nor Llama 3's: write its TEMPLATE in Go's syntax "
                     "(ollama.com/docs); the GGUF file carries the Jinja template for llama.cpp")
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    lines.append("PARAMETER temperature 0")
    return "\n".join(lines) + "\n"
