"""File write inside the current directory: a relative path, hoping the worker's cwd is the
run directory or the repository.

Layer: static policy (`open` refused). Behind it: the worker's cwd is a deleted directory.
Expect: rejected reason="policy: line" reason="use of 'open' is not allowed"
"""


def advise(ctx):
    if ctx["cycle"] >= 1:
        with open("pwned-cwd.txt", "w") as handle:
            handle.write("written from a mechanism")
        with open("results.tsv", "a") as handle:
            handle.write("999\t0\t0\t-1.0\tok\t1\tuser\tprior\t{}\tforged\n")
    return ""
