"""The steps of a fit that differ on several processes."""

from headstart.data.transforms import Preprocessing
from headstart.workflows.distributed_steps import memory_cache_note


def _pre() -> Preprocessing:
    return Preprocessing(input_size=224, crop_pct=0.875)  # resize 256


def test_memory_cache_note_when_the_copies_of_all_processes_outgrow_half_the_ram():
    # 10k photos at 256 px are about 2.6 GB per process; 8 processes on a 32 GB machine: 21 GB
    note = memory_cache_note(10_000, _pre(), 8, 32 * 10**9)
    assert note is not None and "each of the 8 process(es) of this machine: about 21.0 GB of its 32.0 GB" in note
    assert "--cache disk" in note
    assert memory_cache_note(10_000, _pre(), 1, 32 * 10**9) is None  # one copy fits
    assert memory_cache_note(10_000, _pre(), 8, None) is None  # RAM unknown: no guess
