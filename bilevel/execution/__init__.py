"""Where evaluations and local model servers run: executors (local, Ray), the evaluator
subprocess, the llama.cpp server manager."""
