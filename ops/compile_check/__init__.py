"""Compile check: every Triton kernel the CUDA path launches, compiled for real GPUs, no GPU.

The public ops run forward and backward on tensors that report a CUDA device but hold no
memory (:mod:`.fake_cuda`); every ``kernel[grid](...)`` they make is recorded instead of run
(:mod:`.compiler`), then compiled by Triton and ptxas for each architecture of
:mod:`.targets`, and checked against its launch limits (:mod:`.report`). Cases and shapes:
:mod:`.cases`. Command line: ``tools/compile_check.py``. The GPU check
(``benchmarks/gpu_check.py``) counts and compiles its calls' kernel variants ahead with
:mod:`.variants`.

Triton must run its real compiler: :mod:`.compiler` refuses to load under
``TRITON_INTERPRET=1``. While it records and compiles it replaces Triton's active driver,
``JITFunction.run`` and the ops' allocator and sizing hooks, each within a context manager
that restores them on exit, also on errors.
"""
