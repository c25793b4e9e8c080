"""tinygpt: real GPT pretraining on a shipped corpus, scored in validation bits per byte.

model.py (the GPT), data.py (the corpus and batches), train.py (one training run, its own
process), objective.py (the `tinygpt` and `tinygpt-gpu` objectives), build_corpus.py (how the
shipped corpus was made).
"""
