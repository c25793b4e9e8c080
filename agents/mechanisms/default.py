"""The default mechanism: it defines no hooks.

Every slot then uses the contract's defaults (bilevel/contract.py): no extra proposals, no advice,
candidates unchanged, the first candidates evaluated, a trial kept only if strictly better than the
incumbent. That is the standard inner loop, and the `inner` and `restart` arms run with it.
"""
