"""Prompts of the LLM researcher and meta-researcher. Plain format strings, one place."""

from __future__ import annotations

RESEARCHER_SYSTEM = """You are an ML researcher tuning a training setup. Each turn you propose \
ONE experiment: change 1 to 3 parameters of the current best configuration. Reply with JSON only."""

RESEARCHER_USER = """Objective: {objective} -- {description}
Metric: {metric} ({direction}; {better} is better).

Search space (name: type, allowed values, baseline default):
{space}

Do not change these frozen parameters: {frozen}

Current best configuration (metric {incumbent_metric}):
{incumbent}

Recent trials (newest last):
{history}
{strategy}{advice}
Propose a configuration that has not been tried. Reply with JSON only, in this form (the \
values here are only an example):
{example}"""

CODE_SYSTEM = """You are an ML researcher improving a training script. Each turn you propose \
ONE experiment: change up to 3 parameters, edit the source, or both. Reply with JSON only."""

PATCH_FORMAT = """A patch is one or more search/replace edits, each: the file's path on its \
own line, then <<<<<<< SEARCH, the exact lines now in the file (indentation included, unique in \
the file), =======, the new lines, >>>>>>> REPLACE. Files you may edit: {allowed}."""

CODE_EDIT = """You may also edit the source, as a researcher editing train.py would: the \
architecture, the optimizer, the training loop, anything. The files you may edit, as they are now:

{files}

{patch_format} The script must still print its metric. Give "changes" (parameters), "patch" \
(edits), or both; "patch" is "" for none.
Reply with JSON only, in this form (the values here are only an example):
{example}"""

CODE_FIX = """Trial {trial} ran your patch and crashed. Its patch:
```diff
{diff}
```
The last lines of its output:
```
{tail}
```
Fix it: reply with a patch to the crashed source below that makes it run (keep the idea, \
repair the bug). The files as the crashed trial ran them:

{files}

{patch_format}
Reply with JSON only, in this form (the values here are only an example):
{example}"""

REPAIR = """Your reply could not be used: {error}
Reply again with JSON only, in exactly the format asked for."""

META_SYSTEM = """You are a meta-researcher. An inner research loop tunes a training setup; you \
improve HOW it searches by writing a search mechanism: a small Python module whose hooks the \
inner loop calls. You read its code and its trace, find the bottleneck, and write the mechanism."""

META_CONTEXT = """## The slot contract (the hooks you may define)
```python
{contract}
```

## The mechanism in the slots now
```python
{current}
```

## The researcher's prompt (what the inner loop's researcher sees)
{researcher_prompt}

## Assessment of the last cycle
{assessment}

## Sandbox rules for your code
- Define only plain functions named after hooks (propose, advise, review, select, accept) plus \
helper functions and UPPER_CASE constants. No classes needed.
- Imports only from: {modules}. No other imports, no open/eval/exec/getattr.
- No name or attribute may start with an underscore.
- Keep state between calls only in ctx["memory"] (a JSON dict: string keys, JSON values).
- Every hook must return the contract's type for any ctx (empty history, failed trials, \
categorical parameters, incumbent metric None), within {timeout} seconds."""

META_EXPLORE = """{context}

Step 1 (explore): where does the inner loop's search go wrong? Name its bottlenecks \
(repeated or fixated proposals, parameters never tried, steps too small, greedy acceptance...), \
citing the assessment. Propose three mechanism ideas, from any field (bandits, design of \
experiments, tabu search, annealing, surrogate models...)."""

META_CRITIQUE = """Ideas:
{ideas}

Step 2 (critique): score each idea by impact x feasibility / complexity for this loop and \
this sandbox, and pick one."""

META_SPECIFY = """Critique:
{critique}

Step 3 (specify): specify the chosen mechanism precisely: which hooks, what each computes from \
ctx, what it keeps in ctx["memory"], and its constants."""

META_GENERATE = """Specification:
{spec}

Step 4 (generate): write the complete mechanism module in one ```python block. It must follow \
the slot contract and the sandbox rules exactly."""

META_REPAIR = """The mechanism was rejected by validation:
{reason}

```python
{source}
```

Fix it. Reply with the complete corrected module in one ```python block."""

PARAMS_USER = """{context}

Instead of a mechanism, adjust the inner loop's own parameters for the next cycle. Current \
parameters: {params}. Parameters of the search space: {names}. Reply with JSON exactly like:
{{"diagnosis": "<what goes wrong>", "strategy": "explore", "freeze": ["<param>"], \
"unfreeze": [], "guidance": "<one sentence for the researcher>", "temperature": 1.0, \
"candidates": 1}}"""
