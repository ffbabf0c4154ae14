"""Small models shaped like the families the GGUF exporter covers, made offline for its tests.

Each is studio-tiny's pretrained weights in the family's architecture (Qwen2's q/k/v biases, which studio-tiny
lacks, are seeded), with a tokenizer of the family's kind: studio-tiny's vocabulary and merges, but the family's
own split before the merges (the pattern llama.cpp knows by name), its special tokens and its chat template.
Pretrained weights answer in words and end their turns, so llama.cpp's greedy answers and its stop at the end of
a turn can be compared with transformers'; random weights would give near-ties that any rounding flips.

- ``qwen2``: Qwen2ForCausalLM, Qwen2's split (digits one by one), ChatML with a default system turn.
- ``llama3``: LlamaForCausalLM, Llama 3's split (digits in threes), ``<|begin_of_text|>`` added to every text,
  Llama 3's header/turn tokens and template (studio-tiny's ``<|im_end|>`` renamed ``<|eot_id|>``).
- ``mistral``: MistralForCausalLM with studio-tiny's own tokenizer (GPT-2's byte-level split) and ChatML.
"""

from __future__ import annotations

import json
from pathlib import Path

FAMILIES = ("qwen2", "llama3", "mistral")
BIAS = 0.005  # the spread of the seeded q/k/v biases: small beside the weights studio-tiny learned

SPLIT = {  # the tokenizer.json patterns of Llama 3 and Qwen2 (digits in threes / one by one)
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
              r"\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+",
}

QWEN2_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if message['role'] != 'system' %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")

LLAMA3_TEMPLATE = (
    "{{- bos_token }}{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{{- message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")


def family_tokenizer(family: str, tiny_path: Path):
    """The family's tokenizer built from studio-tiny's (same vocabulary and merges)."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if family == "mistral":
        return AutoTokenizer.from_pretrained(tiny_path)
    data = json.loads((Path(tiny_path) / "tokenizer.json").read_text())
    data["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": SPLIT[family]}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    if family == "qwen2":
        return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(data)), eos_token="<|im_end|>",
                                       pad_token="<|endoftext|>", chat_template=QWEN2_TEMPLATE)
    renamed = {"<|endoftext|>": "<|end_of_text|>", "<|im_start|>": "<|start_header_id|>", "<|im_end|>": "<|eot_id|>"}
    vocab = data["model"]["vocab"]
    for old, new in renamed.items():
        vocab[new] = vocab.pop(old)
    for added in data["added_tokens"]:
        added["content"] = renamed.get(added["content"], added["content"])
    for extra in ("<|begin_of_text|>", "<|end_header_id|>"):
        data["added_tokens"].append({"id": len(vocab), "content": extra, "single_word": False, "lstrip": False,
                                     "rstrip": False, "normalized": False, "special": True})
        vocab[extra] = len(vocab)
    bos = vocab["<|begin_of_text|>"]
    data["post_processor"] = {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                                         {"Sequence": {"id": "A", "type_id": 0}}],
                              "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                                       {"Sequence": {"id": "A", "type_id": 0}},
                                       {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                                       {"Sequence": {"id": "B", "type_id": 1}}],
                              "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [bos],
                                                                       "tokens": ["<|begin_of_text|>"]}}}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(data)),
                                   bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<|pad|>",
                                   chat_template=LLAMA3_TEMPLATE)


def family_model(family: str, tiny_path: Path, seed: int = 0):
    """(model, tokenizer): studio-tiny's weights in the family's architecture, eval mode, fp32."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, MistralConfig, Qwen2Config

    tok = family_tokenizer(family, tiny_path)
    tiny = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32)
    c = tiny.config
    vocab = -(-len(tok) // 64) * 64
    shape = dict(vocab_size=vocab, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                 num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                 num_key_value_heads=c.num_key_value_heads, head_dim=c.head_dim,
                 max_position_embeddings=c.max_position_embeddings, rms_norm_eps=c.rms_norm_eps,
                 tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                 pad_token_id=tok.pad_token_id)
    config = {"qwen2": lambda: Qwen2Config(**shape), "llama3": lambda: LlamaConfig(**shape),
              "mistral": lambda: MistralConfig(**shape, sliding_window=None)}[family]()
    gen = torch.Generator().manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = tiny.state_dict()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in state and state[name].shape == p.shape:
                p.copy_(state[name])
            elif name in state:  # a larger embedding: the new tokens' rows seeded
                rows = state[name].shape[0]
                p[:rows].copy_(state[name])
                p[rows:].copy_(torch.randn(p[rows:].shape, generator=gen) * 0.02)
            else:  # Qwen2's q/k/v biases
                p.copy_(torch.randn(p.shape, generator=gen) * BIAS)
    stops = sorted({tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>" if family != "llama3" else "<|eot_id|>")})
    model.generation_config = GenerationConfig(eos_token_id=stops, pad_token_id=tok.pad_token_id)
    return model.eval(), tok
