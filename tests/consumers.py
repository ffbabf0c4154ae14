"""The programs a user opens the studio's files with, run by the tests: llama.cpp itself and Ollama's template
engine (Go's text/template). .ci/run installs both: llama.cpp as the npm package node-llama-cpp, whose prebuilt CPU
binary needs no build and no download (``npm install --prefix tests/llama_cpp``, .ci/run), and Debian's golang-go."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
LLAMA_CPP = HERE / "llama_cpp"
BINARIES = LLAMA_CPP / "node_modules" / "@node-llama-cpp" / "linux-x64" / "bins" / "linux-x64"
INSTALL = "npm install --prefix tests/llama_cpp --omit=optional --ignore-scripts --no-package-lock (.ci/run does it)"


def llama_cpp_version() -> str:
    """node-llama-cpp's version and the llama.cpp release its binary was built from."""
    package = json.loads((LLAMA_CPP / "node_modules" / "node-llama-cpp" / "package.json").read_text())
    built = json.loads((BINARIES / "_nlcBuildMetadata.json").read_text())["buildOptions"]["llamaCpp"]
    return f"node-llama-cpp {package['version']} (llama.cpp {built['repo']} {built['release']})"


def llama_cpp(model: Path, texts: list[str] = (), prompts: list[str] = (), max_tokens: int = 32,
              chats: list[list[dict]] = ()) -> dict:
    """llama.cpp on a GGUF file (tests/llama_cpp/probe.mjs): its bos / eos / eot ids and whether it adds a bos, each
    text's tokens (special tokens parsed), its greedy answer to each prompt with the token it stopped at, and each
    chat rendered by the file's Jinja template in node-llama-cpp."""
    assert (LLAMA_CPP / "node_modules" / "node-llama-cpp").is_dir(), f"llama.cpp is not installed: {INSTALL}"
    ask = {"model": str(model), "texts": list(texts), "prompts": list(prompts), "max_tokens": max_tokens,
           "chats": list(chats)}
    done = subprocess.run(["node", str(LLAMA_CPP / "probe.mjs")], input=json.dumps(ask), capture_output=True,
                          text=True, timeout=600, cwd=LLAMA_CPP)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


class _Message(ctypes.Structure):
    _fields_ = [("role", ctypes.c_char_p), ("content", ctypes.c_char_p)]


@lru_cache(maxsize=1)
def _libllama():
    lib = ctypes.CDLL(str(next(BINARIES.glob("libllama*.so"))))
    lib.llama_chat_apply_template.restype = ctypes.c_int32
    lib.llama_chat_apply_template.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Message), ctypes.c_size_t,
                                              ctypes.c_bool, ctypes.c_char_p, ctypes.c_int32]
    return lib


def llama_cpp_chat(template: str, chat: list[dict], add_assistant: bool = True) -> str:
    """A chat formatted by llama.cpp's own ``llama_chat_apply_template`` (libllama, the same binary) with the
    template a GGUF file carries."""
    messages = (_Message * len(chat))(*[_Message(m["role"].encode(), m["content"].encode()) for m in chat])
    size = 1 << 16
    buf = ctypes.create_string_buffer(size)
    n = _libllama().llama_chat_apply_template(template.encode(), messages, len(chat), add_assistant, buf, size)
    assert 0 <= n < size, f"llama.cpp does not know this chat template ({n})"
    return buf.raw[:n].decode()


def ollama_render(template: str, system: str | None, chats: list[list[dict]]) -> list[str]:
    """Each chat as Ollama renders it with a Modelfile's TEMPLATE and SYSTEM (tests/ollama_template/main.go)."""
    go = shutil.which("go")
    assert go, "Go is not installed: apt-get install golang-go (.ci/run does it)"
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    done = subprocess.run([go, "run", "."], input=json.dumps({"template": template, "system": system or "",
                                                              "chats": chats}),
                          capture_output=True, text=True, timeout=600, cwd=HERE / "ollama_template", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def modelfile_template(modelfile: str) -> tuple[str, str | None]:
    """The TEMPLATE and SYSTEM (or None) of an Ollama Modelfile, as Ollama's parser reads triple-quoted values."""
    def value(key: str) -> str | None:
        start = modelfile.find(f'{key} """')
        if start < 0:
            return None
        start += len(key) + 4
        return modelfile[start:modelfile.index('"""', start)]

    return value("TEMPLATE"), value("SYSTEM")
