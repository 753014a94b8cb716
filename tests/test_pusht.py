"""Tests for ddpm_nb.data.pusht: the zarr reader, structure checks, search order and download, episode
split, windows and the normaliser.

The reader is checked against the real store in ../shared/data. The small stores the tests write (with
their own writer below) are fixtures for the reader and the download path: they are cut from the real
episodes or are labelled synthetic arrays, never presented as the data set.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import blosc
import numpy as np
import pytest
import torch
from conftest import use_folders
from test_cache import refused_url, serving

from ddpm_nb.data import pusht
from ddpm_nb.data.cache import CorruptDownload, DatasetUnavailable
from ddpm_nb.policy import windows

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # what `make` sets DDPM_NB_DATA to
REAL = SHARED / "pusht" / pusht.STORE_NAME


@pytest.fixture(scope="module")
def real() -> pusht.PushTData:
    if not REAL.is_dir():
        pytest.skip(f"the shared data folder has no {REAL}")
    return pusht.read_store(REAL, pusht.OFFICIAL_SIZE)


# ---------------------------------------------------------------- a zarr v2 writer for fixtures

def write_array(folder: Path, array: np.ndarray, rows: int) -> None:
    """One zarr v2 array as the released store has them: blosc/zstd, bit-shuffle, `rows` rows a chunk."""
    folder.mkdir(parents=True)
    chunks = [rows, *array.shape[1:]]
    header = {"chunks": chunks, "compressor": {"blocksize": 0, "clevel": 5, "cname": "zstd", "id": "blosc",
                                               "shuffle": 2},
              "dtype": array.dtype.str, "fill_value": 0, "filters": None, "order": "C",
              "shape": list(array.shape), "zarr_format": 2}
    (folder / ".zarray").write_text(json.dumps(header))
    for i in range(-(-array.shape[0] // rows)):
        block = np.zeros(chunks, dtype=array.dtype)  # zarr stores whole chunks, the last one padded
        part = array[i * rows:(i + 1) * rows]
        block[:len(part)] = part
        suffix = "".join(".0" for _ in array.shape[1:])
        (folder / f"{i}{suffix}").write_bytes(
            blosc.compress(block.tobytes(), typesize=array.dtype.itemsize, cname="zstd",
                           shuffle=blosc.BITSHUFFLE))


def write_store(store: Path, state, action, ends, keypoint=None, rows: int = 7) -> Path:
    for group in ("", "data", "meta"):
        (store / group).mkdir(parents=True, exist_ok=True)
        (store / group / ".zgroup").write_text('{"zarr_format": 2}')
    write_array(store / "data" / "state", np.asarray(state, dtype="<f4"), rows)
    write_array(store / "data" / "action", np.asarray(action, dtype="<f4"), rows)
    write_array(store / "meta" / "episode_ends", np.asarray(ends, dtype="<i8"), 5)
    if keypoint is not None:
        write_array(store / "data" / "keypoint", np.asarray(keypoint, dtype="<f4"), rows)
    return store


def synthetic(ends=(5, 12, 40)) -> dict:
    """Labelled synthetic arrays (row number in every entry): a fixture, not PushT."""
    n = ends[-1]
    rows = np.arange(n, dtype=np.float32)[:, None]
    return {"state": rows + np.arange(5) / 10, "action": rows + np.arange(2) / 10, "ends": np.array(ends)}


@pytest.fixture
def small_real(real) -> dict:
    """The first 3 real episodes, as arrays."""
    n = int(real.episode_ends[2])
    return {"state": real.state[:n].numpy(), "action": real.action[:n].numpy(),
            "keypoint": real.keypoint[:n].numpy(), "ends": real.episode_ends[:3].numpy()}


# ---------------------------------------------------------------- reading the real store

def test_real_store_has_the_released_structure(real):
    assert real.state.shape == (25650, 5) and real.action.shape == (25650, 2)
    assert real.keypoint.shape == (25650, 9, 2) and real.episodes == 206
    assert real.state.dtype == real.action.dtype == torch.float32 and real.episode_ends.dtype == torch.int64
    torch.testing.assert_close(real.state[0], torch.tensor([222.0, 97.0, 222.99382, 381.59903, 3.0079994]))
    lengths = torch.diff(real.episode_ends, prepend=torch.tensor([0]))
    assert (lengths.min().item(), lengths.max().item()) == (49, 246)
    assert real.episode(1) == slice(161, 279)


def test_reader_round_trips_a_store_with_a_ragged_last_chunk(tmp_path, small_real):
    store = write_store(tmp_path / pusht.STORE_NAME, **small_real, rows=161 - 10)
    got = pusht.read_store(store)
    np.testing.assert_array_equal(got.state.numpy(), small_real["state"])
    np.testing.assert_array_equal(got.keypoint.numpy(), small_real["keypoint"])
    np.testing.assert_array_equal(got.episode_ends.numpy(), small_real["ends"])
    shutil.rmtree(store / "data" / "keypoint")  # keypoints are optional
    assert pusht.read_store(store).keypoint is None


# ---------------------------------------------------------------- structure checks refuse a broken store

def _damage(store: Path, how: str) -> str:
    if how == "missing array":
        shutil.rmtree(store / "data" / "action")
        return "has no array data/action"
    if how == "missing chunk":
        (store / "data" / "state" / "1.0").unlink()
        return r"chunk .*1\.0 is missing"
    if how == "damaged chunk":
        path = store / "data" / "state" / "0.0"
        path.write_bytes(path.read_bytes()[:20])
        return r"chunk .*0\.0 does not decode"
    if how == "wrong shape":
        shutil.rmtree(store / "data" / "action")
        write_array(store / "data" / "action", np.zeros((40, 3), "<f4"), 7)
        return r"data/action is \(40, 3\) float32, expected \(N, 2\) float32"
    if how == "bad episode ends":
        shutil.rmtree(store / "meta" / "episode_ends")
        write_array(store / "meta" / "episode_ends", np.array([5, 5, 40], "<i8"), 5)
        return "episode_ends must increase strictly"
    if how == "NaN":
        shutil.rmtree(store / "data" / "state")
        state = synthetic()["state"].astype("<f4")
        state[3, 1] = np.nan
        write_array(store / "data" / "state", state, 7)
        return "NaN"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["missing array", "missing chunk", "damaged chunk", "wrong shape",
                                 "bad episode ends", "NaN"])
def test_verify_store_refuses_a_broken_store(tmp_path, how):
    store = write_store(tmp_path / "s.zarr", **synthetic())
    assert pusht.verify_store(store)["data/state"].shape == (40, 5)
    message = _damage(store, how)
    with pytest.raises(ValueError, match=message):
        pusht.verify_store(store)


def test_verify_store_checks_the_released_counts(tmp_path):
    store = write_store(tmp_path / "s.zarr", **synthetic())
    released = "holds 40 steps in 3 episodes, but the released store holds 25650 in 206"
    with pytest.raises(ValueError, match=released):
        pusht.verify_store(store, pusht.OFFICIAL_SIZE)
    with pytest.raises(ValueError, match="not a zarr v2 group"):
        pusht.verify_store(store / "data" / "state")


# ---------------------------------------------------------------- where the data are looked for, and download

def test_load_reads_the_data_root_first(monkeypatch, tmp_path, real):
    use_folders(monkeypatch, SHARED, tmp_path / "cache")
    got = pusht.load_pusht(download=False)
    assert got.source == str(REAL) and torch.equal(got.state, real.state)
    assert not (tmp_path / "cache").exists()  # found without touching the cache


def test_missing_data_says_where_it_looked(monkeypatch, tmp_path):
    use_folders(monkeypatch, tmp_path / "data", tmp_path / "cache")
    with pytest.raises(DatasetUnavailable) as info:
        pusht.load_pusht(download=False)
    message = str(info.value)
    assert str(tmp_path / "data" / "pusht" / pusht.STORE_NAME) in message
    assert str(tmp_path / "cache" / "pusht" / pusht.STORE_NAME) in message
    assert "DDPM_NB_DATA" in message and pusht.URLS[0] in message
    monkeypatch.setattr(pusht, "URLS", (refused_url() + "pusht.zip",))
    with pytest.raises(DatasetUnavailable, match="Connection refused|refused"):
        pusht.load_pusht()
    assert not any((tmp_path / "cache" / "pusht").iterdir())  # no partial download left


def zip_store(store: Path, archive: Path) -> Path:
    """An archive laid out as the official one: pusht/pusht_cchi_v7_replay.zarr/..."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        for path in sorted(store.rglob("*")):
            z.write(path, Path("pusht") / pusht.STORE_NAME / path.relative_to(store))
    return archive


def test_download_unpacks_and_verifies_the_archive(monkeypatch, tmp_path, small_real):
    served = tmp_path / "served"
    served.mkdir()
    zip_store(write_store(tmp_path / "src" / pusht.STORE_NAME, **small_real), served / "pusht.zip")
    monkeypatch.setattr(pusht, "OFFICIAL_SIZE", {"steps": len(small_real["state"]), "episodes": 3})
    use_folders(monkeypatch, None, tmp_path / "cache")
    write_store(tmp_path / "cache" / "pusht" / pusht.STORE_NAME, **synthetic())  # a damaged cached copy
    with pytest.raises(ValueError, match="holds 40 steps in 3 episodes"):
        pusht.load_pusht(download=False)
    with serving(served, monkeypatch) as base:
        monkeypatch.setattr(pusht, "URLS", (base + "pusht.zip",))
        got = pusht.load_pusht()
    cached = tmp_path / "cache" / "pusht"
    assert got.source == str(cached / pusht.STORE_NAME)
    np.testing.assert_array_equal(got.action.numpy(), small_real["action"])
    assert sorted(p.name for p in cached.iterdir()) == [pusht.STORE_NAME]  # no zip, no old copy left
    monkeypatch.setattr(pusht, "URLS", (refused_url() + "pusht.zip",))  # now read from the cache
    assert torch.equal(pusht.load_pusht().state, got.state)


@pytest.mark.parametrize("what", ["not a zip", "another store"])
def test_a_bad_archive_is_refused_and_deleted(monkeypatch, tmp_path, what):
    served = tmp_path / "served"
    served.mkdir()
    if what == "not a zip":
        (served / "pusht.zip").write_bytes(b"<html>a captive portal</html>")
    else:  # a valid zarr store but not the released counts
        zip_store(write_store(tmp_path / "src", **synthetic()), served / "pusht.zip")
    use_folders(monkeypatch, None, tmp_path / "cache")
    with serving(served, monkeypatch) as base:
        monkeypatch.setattr(pusht, "URLS", (base + "pusht.zip",))
        with pytest.raises(CorruptDownload, match="damaged or not the released one"):
            pusht.load_pusht()
    assert list((tmp_path / "cache" / "pusht").iterdir()) == []


# ---------------------------------------------------------------- split, windows

def test_split_holds_out_every_tenth_episode(real):
    train, val = windows.split_episodes(real.episodes)
    assert (len(train), len(val)) == (186, 20)
    assert sorted(train + val) == list(range(206)) and not set(train) & set(val)
    assert val[:3] == [9, 19, 29]
    with pytest.raises(ValueError, match="every >= 2"):
        windows.split_episodes(10, every=1)


def test_windows_stay_inside_their_episode_and_pad_by_repetition():
    ends = torch.tensor([5, 30, 52])  # lengths 5 (shorter than a window), 25, 22
    idx = windows.window_index(ends)
    episode_of = torch.bucketize(idx, ends, right=True)  # episode of each row index
    assert (episode_of == episode_of[:, :1]).all(), "a window crosses two episodes"
    # windows per episode: max(L - T_p + T_o + T_a - 1, 1) = max(L - 7, 1)
    per_episode = torch.bincount(episode_of[:, 0]).tolist()
    assert per_episode == [1, 18, 15] and idx.shape == (34, 16)
    first, last = idx[1], idx[18]  # the first and last windows of episode 1 (rows 5..29)
    assert first.tolist() == [5, 5] + list(range(6, 20))  # the first step repeated once (T_o - 1)
    assert last.tolist() == list(range(21, 30)) + [29] * 7  # the last step repeated T_a - 1 = 7 times
    assert idx[0].tolist() == [0, 0, 1, 2, 3, 4] + [4] * 10  # a short episode: padded at both ends
    executed = idx[1:19, 1:9]  # rows T_o - 1 .. T_o + T_a - 2: never padding inside an episode
    assert ((executed[:, 1:] - executed[:, :-1]) == 1).all()
    assert (idx[2:19] - idx[1:18] >= 0).all() and (idx[2:19, -1] - idx[1:18, -1]).le(1).all()


def test_windows_of_the_real_data(real):
    train, val = windows.split_episodes(real.episodes)
    idx = {name: windows.window_index(real.episode_ends, eps) for name, eps in
           (("all", None), ("train", train), ("val", val))}
    assert {k: v.shape[0] for k, v in idx.items()} == {"all": 24208, "train": 21920, "val": 2288}
    obs, act = windows.make_windows(real.state, real.action, idx["val"])
    assert obs.shape == (2288, 2, 5) and act.shape == (2288, 16, 2)
    val_rows = torch.cat([torch.arange(real.episode(e).start, real.episode(e).stop) for e in val])
    assert torch.isin(idx["val"], val_rows).all() and not torch.isin(idx["train"], val_rows).any()
    with pytest.raises(ValueError, match="Episode 206 does not exist"):
        windows.window_index(real.episode_ends, [206])


# ---------------------------------------------------------------- features and the normaliser

def test_minmax_maps_the_fitted_range_to_minus_one_one_and_round_trips():
    x = torch.tensor([[0.0, 10.0, 3.0], [512.0, 20.0, 3.0], [100.0, 15.0, 3.0]])
    norm = windows.MinMax.fit(x)
    y = norm.encode(x)
    assert y[:, :2].min().item() == -1.0 and y[:, :2].max().item() == 1.0
    assert torch.equal(y[:, 2], torch.zeros(3))  # a constant feature is only centred
    torch.testing.assert_close(norm.decode(y), x)
    back = windows.MinMax.from_state_dict(norm.state_dict())
    assert torch.equal(back.low, norm.low) and torch.equal(back.high, norm.high)
    with pytest.raises(ValueError, match="3 features but x has shape"):
        norm.encode(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="normaliser state must be"):
        windows.MinMax.from_state_dict({"low": torch.zeros(2)})


def test_normaliser_fitted_on_training_episodes_only(real):
    train, val = windows.split_episodes(real.episodes)
    rows = torch.cat([torch.arange(real.episode(e).start, real.episode(e).stop) for e in train])
    norm = windows.MinMax.fit(real.action[rows])
    assert torch.equal(norm.low, real.action[rows].min(0).values)
    y = norm.encode(real.action)
    torch.testing.assert_close(norm.decode(y), real.action, atol=1e-4, rtol=0)
    assert y[rows].abs().max().item() <= 1.0 + 1e-6


def test_state_features():
    s = torch.tensor([[1.0, 2.0, 3.0, 4.0, np.pi / 2]])
    want = torch.tensor([[1.0, 2.0, 3.0, 4.0, 1.0, 0.0]])
    torch.testing.assert_close(windows.state_features(s, "sincos"), want)
    assert torch.equal(windows.state_features(s), s)
    with pytest.raises(ValueError, match="Unknown observation features 'pixels'"):
        windows.state_features(s, "pixels")
    with pytest.raises(ValueError, match="5 numbers"):
        windows.state_features(torch.zeros(2, 4))


def test_doing_what_the_missing_data_message_says_works(monkeypatch, tmp_path, small_real):
    """The message asks for pusht.zip, as downloaded, in a named folder: put it there and load again."""
    import re

    monkeypatch.setattr(pusht, "OFFICIAL_SIZE", {"steps": len(small_real["state"]), "episodes": 3})
    monkeypatch.setattr(pusht, "URLS", (refused_url() + "pusht.zip",))
    use_folders(monkeypatch, None, tmp_path / "cache")
    with pytest.raises(DatasetUnavailable) as info:
        pusht.load_pusht()
    folder = re.search(r"put it, as it is, in (\S+): the next call", str(info.value)).group(1)
    zip_store(write_store(tmp_path / "src" / pusht.STORE_NAME, **small_real), Path(folder) / "pusht.zip")
    got = pusht.load_pusht()
    np.testing.assert_array_equal(got.action.numpy(), small_real["action"])
    assert sorted(p.name for p in Path(folder).iterdir()) == [pusht.STORE_NAME]
