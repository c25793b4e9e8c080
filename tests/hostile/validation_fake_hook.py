"""Hooks that are not functions: a class named `propose` and a module-level dict named
`accept`, hoping the loader calls whatever object sits under a hook's name (a class's
constructor runs arbitrary code with attacker-controlled arguments).

Layer: validation's load step (each hook must be a plain function).
Expect: rejected reason="loading the mechanism failed" reason="must be a function"
"""


class propose:
    pass


accept = {"keep": True}
