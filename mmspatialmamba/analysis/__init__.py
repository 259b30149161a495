"""Analysis helpers: parameter and FLOP counting with the SASF formula (see :mod:`.flops`)
and the models and synthetic inputs the tools run (see :mod:`.builders`)."""
from .builders import TensorMode, build_from_config, parse_arch, synthetic_batch
from .flops import (ComplexityReport, SASFCount, count_complexity, matmul_flop_jit,
                    sasf_counting, sasf_flop_jit, sasf_flops)

__all__ = ['ComplexityReport', 'SASFCount', 'TensorMode', 'build_from_config',
           'count_complexity', 'matmul_flop_jit', 'parse_arch', 'sasf_counting',
           'sasf_flop_jit', 'sasf_flops', 'synthetic_batch']
