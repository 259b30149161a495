"""Analysis helpers: parameter and FLOP counting with the SASF formula (see :mod:`.flops`)."""
from .flops import (ComplexityReport, SASFCount, count_complexity, sasf_counting,
                    sasf_flop_jit, sasf_flops)

__all__ = ['ComplexityReport', 'SASFCount', 'count_complexity', 'sasf_counting',
           'sasf_flop_jit', 'sasf_flops']
