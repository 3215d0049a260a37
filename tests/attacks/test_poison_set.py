"""PoisonSet (SPEC 10): (base ids, delta) saved with safetensors and a JSON sidecar holding
the hash; tampered, missing or foreign files are refused with a DataError, never unpickled."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from cpoison.attacks import PoisonSet
from cpoison.errors import DataError


@pytest.fixture
def poisons() -> PoisonSet:
    gen = torch.Generator().manual_seed(0)
    delta = (torch.rand(6, 1, 8, 8, generator=gen) * 2 - 1) * (16 / 255)
    meta = {"attack": "ours", "alignment_loss": 0.25, "restart_losses": [0.25, 0.3],
            "config": {"loss": "l3", "crafting": {"iterations": 5}}}
    return PoisonSet(torch.tensor([3, 17, 4, 99, 0, 41]), delta, inject=False, meta=meta)


def test_round_trip(tmp_path, poisons):
    path = poisons.save(tmp_path / "p.safetensors")
    assert path.is_file()
    sidecar = json.loads((tmp_path / "p.safetensors.json").read_text())
    assert sidecar["sha256"] == poisons.digest()
    assert sidecar["n_poisons"] == 6
    assert sidecar["linf"] == pytest.approx(poisons.linf)
    loaded = PoisonSet.load(path)
    assert torch.equal(loaded.ids, poisons.ids)
    assert loaded.ids.dtype == torch.long
    assert torch.equal(loaded.delta, poisons.delta)
    assert loaded.inject is False
    assert loaded.meta == poisons.meta
    assert len(loaded) == 6


def test_injected_flag_round_trips(tmp_path, poisons):
    poisons.inject = True
    assert PoisonSet.load(poisons.save(tmp_path / "p.safetensors")).inject is True


def test_tampered_tensor_is_refused(tmp_path, poisons):
    path = poisons.save(tmp_path / "p.safetensors")
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF  # flip the last data byte: still a valid safetensors file
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="does not match the hash"):
        PoisonSet.load(path)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        PoisonSet.load(tmp_path / "absent.safetensors")


def test_missing_sidecar_is_refused(tmp_path, poisons):
    path = poisons.save(tmp_path / "p.safetensors")
    (tmp_path / "p.safetensors.json").unlink()
    with pytest.raises(DataError, match="unreadable"):
        PoisonSet.load(path)


class _Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('unpickled!')",))


@pytest.mark.parametrize("content", [b"not a safetensors file at all", pickle.dumps(_Boom())],
                         ids=["text", "pickle"])
def test_foreign_file_is_refused(tmp_path, poisons, content):
    path = poisons.save(tmp_path / "p.safetensors")
    path.write_bytes(content)
    with pytest.raises(DataError, match=str(path.name)):
        PoisonSet.load(path)


def test_mismatched_lengths_are_refused():
    with pytest.raises(DataError, match="3 poison ids but 2 deltas"):
        PoisonSet(torch.tensor([0, 1, 2]), torch.zeros(2, 1, 8, 8))
