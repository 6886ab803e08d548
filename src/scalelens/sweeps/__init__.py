"""Scale sweeps (issue 6): array-level analysis and verdicts of three seed studies.

* si: attention-entropy Specialization Index and the B11 heritage-vs-size verdict (seed 002)
* gain: last-token residual-stream gain and the H25 verdict (seed 004)
* uniformity: uniformity asymmetry by layer and the peak-stability verdict (seed 003)
* bootstrap: the percentile bootstrap over prompts / pairs shared by all three
* verdicts: JSON views and correlation helpers shared by the verdicts

Nothing here loads a model or writes a file: functions take numpy arrays and return frozen
dataclasses; the stages capture the arrays and write the results.
"""
