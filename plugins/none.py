"""No regularizer and no replay: plain sequential fine-tuning.

"Sequential" in the ClassNorm paper's continual table (Skorokhodov & Elhoseiny, ICLR
2021): each task is trained on its own data only, with nothing to hold on to earlier
tasks. It is the lower bound the regularizers and replay schemes are measured against.
"""

from __future__ import annotations

from czsl import Component, hookimpl

NAME = "none"


@hookimpl
def czsl_components():
    """A "none" regularizer and a "none" replay."""
    return [
        Component("regularizer", NAME, "no regularizer: sequential fine-tuning (lower bound)",
                  options={}),
        Component("replay", NAME, "no replay: each task trains on its own data only",
                  options={}),
    ]


@hookimpl
def czsl_make_regularizer(options):
    """No Avalanche plugin at all; ``options`` must be empty."""
    if options:
        raise TypeError(f"the 'none' regularizer takes no options, got {sorted(options)}")
    return []


@hookimpl
def czsl_make_replay(options):
    """No Avalanche plugin at all; ``options`` must be empty."""
    if options:
        raise TypeError(f"the 'none' replay takes no options, got {sorted(options)}")
    return []
