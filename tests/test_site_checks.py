"""The site test's eye for what a reader must never see, checked on pages made to fail it."""

from __future__ import annotations

import pytest
from test_site import output_problems

CELL = '<div class="cell_output docutils container"><div class="output stderr"><pre>{}</pre></div></div>'


@pytest.mark.parametrize("text, what", [
    ("-ELBO:   0%|          | 0/1998 [00:00<?, ?it/s]", "a frozen progress bar"),
    ("PushT episodes: 100%|██████████| 50/50 [13:20<00:00, 16.01s/it]", "a frozen progress bar"),
    ("Traceback (most recent call last):\n  File \"x.py\", line 1", "a traceback"),
    ("HBox(children=(HTML(value=''), FloatProgress(value=0.0, max=10.0)))", "raw widget text"),
    ('{"model_id": "3f1c", "version_major": 2}', "raw widget text"),
])
def test_a_page_with_it_fails(text, what):
    problems = output_problems(CELL.format(text))
    assert problems and problems[0].startswith(what), problems


@pytest.mark.parametrize("text", [
    "✓ the chain is stationary: max error 1.2e-16 (tolerance 1e-12)",
    "DPM-Solver++ 10 NFE: 0.0266 ± 0.0087; 95% of samples inside [-3, 3]",
    "loaded checkpoints/pusht.pt (sha256 cb7c15ecc656…)",
])
def test_a_good_page_passes(text):
    assert output_problems(CELL.format(text)) == []
