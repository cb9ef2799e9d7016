"""SeispipeDataset against np.load of the shards and the manifests'
provenance: regular, f16, spectrogram and unlabelled outputs, Kaggle parts,
filters, both provenance forms, verify, and every bad input of the issue."""

import json
import os
import pickle

import numpy as np
import pytest

from conftest import copy_folder, manifest, reference, to_v1
from seispipe_data import SeispipeDataError, SeispipeDataset


def assert_same_samples(ds, ref):
    assert len(ds) == len(ref)
    for i, (x, y, rec) in enumerate(ref):
        item = ds[i]
        got_x, got_y = item if y is not None else (item, None)
        assert got_x.dtype == np.float32 and got_x.shape == x.shape
        np.testing.assert_array_equal(got_x, x.astype(np.float32), err_msg=f"x of sample {i}")
        if y is not None:
            assert got_y.dtype == np.float32
            np.testing.assert_array_equal(got_y, y.astype(np.float32), err_msg=f"y of sample {i}")
        assert ds.provenance(i) == rec


def test_every_sample_is_its_shard_row_with_its_provenance(data):
    ds = SeispipeDataset(data.out)
    assert ds.labelled and len(ds) == 18
    assert_same_samples(ds, reference([data.out]))
    # Negative indices, locations, and the end of the range.
    np.testing.assert_array_equal(ds[-1][0], ds[17][0])
    loc = ds.location(5)
    assert (loc.shard, loc.row) == (2, 1)
    assert loc.data.endswith("data/data2.npy") and loc.label.endswith("model/model2.npy")
    with pytest.raises(IndexError):
        ds[18]


def test_f16_samples_come_back_as_float32(data):
    ref = reference([data.out16])
    assert ref[0][0].dtype == np.float16
    ds = SeispipeDataset(data.out16)
    assert len(ds) == 12
    assert_same_samples(ds, ref)


def test_spectrogram_samples_keep_their_shape(data):
    ds = SeispipeDataset(data.spec)
    assert ds[0][0].shape == (5, 12, 16, 70) and ds[0][1].shape == (1, 70, 70)
    assert_same_samples(ds, reference([data.spec]))


def test_unlabelled_data_gives_x_alone_and_labels_false_drops_labels(data):
    ds = SeispipeDataset(data.unlabelled)
    assert not ds.labelled and len(ds) == 6
    assert_same_samples(ds, reference([data.unlabelled]))
    x_only = SeispipeDataset(data.out, labels=False)
    assert isinstance(x_only[3], np.ndarray)
    np.testing.assert_array_equal(x_only[3], SeispipeDataset(data.out)[3][0])


def test_kaggle_parts_read_as_the_output_they_came_from(data):
    # Hard links: the parts share the output's files.
    assert os.path.samefile(data.parts[0] / "data1.npy", data.out / "data/data1.npy")
    glob = str(data.root / "kg" / "fwi-test-part-*")
    ds = SeispipeDataset(glob)
    assert_same_samples(ds, reference([data.out]))
    # Given in any order, parts of one output are read in shard order.
    backwards = SeispipeDataset(list(reversed(data.parts)))
    assert [backwards.location(i)[:3] for i in range(len(ds))] == \
        [ds.location(i)[:3] for i in range(len(ds))]
    assert ds.location(17).folder == str(data.parts[2])
    # The manifests' ids are the original samples', not part file names.
    assert all(ds.provenance(i)["id"].startswith("FlatVel_A/") for i in range(len(ds)))


def test_provenance_files_read_like_inline_provenance(data, tmp_path):
    assert manifest(data.out)["format"] == "seispipe-manifest/2"
    # The /1 form (provenance inline in the manifest) reads the same.
    v1 = to_v1(copy_folder(data.out, tmp_path / "v1"))
    assert_same_samples(SeispipeDataset(v1, verify=True), reference([data.out]))
    v2 = copy_folder(data.out, tmp_path / "v2")
    ds = SeispipeDataset(v2, verify=True)
    assert_same_samples(ds, reference([data.out]))
    assert SeispipeDataset(v2, select="originals").provenance(0)["copy"] == 0
    # verify hashes the provenance files too.
    prov = v2 / "provenance/prov2.jsonl"
    text = prov.read_bytes()
    prov.write_bytes(text.replace(b'"copy":1', b'"copy":7', 1))
    assert prov.read_bytes() != text and len(prov.read_bytes()) == len(text)
    with pytest.raises(SeispipeDataError, match=r"prov2\.jsonl \(sha256"):
        SeispipeDataset(v2, verify=True)
    # A provenance file that does not hold one record per sample (its
    # size first caught against the manifest, then its count when read).
    short = b"\n".join(text.splitlines()[:-1]) + b"\n"
    prov.write_bytes(short)
    with pytest.raises(SeispipeDataError, match=r"prov2\.jsonl \(\d+ bytes, the manifest says"):
        SeispipeDataset(v2)
    m = manifest(v2)
    m["shards"][1]["provenance"]["bytes"] = len(short)
    (v2 / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SeispipeDataError, match=r"prov2\.jsonl: 3 provenance records for shard 2"):
        SeispipeDataset(v2).provenance(5)


def originals(rec):
    return rec["copy"] == 0 and not rec["stages"]


def applied(rec, kind):
    return [s for s in rec["stages"] if s["type"] == kind and s.get("applied", True)]


def test_filters_select_by_provenance(data):
    ref = [rec for _, _, rec in reference([data.out])]

    def check(expected, **kw):
        ds = SeispipeDataset(data.out, **kw)
        assert [ds.provenance(i) for i in range(len(ds))] == expected, kw
        return ds

    want = [r for r in ref if originals(r)]
    assert len(want) == 6
    ds = check(want, select="originals")
    # The filtered samples are still the right rows.
    full = SeispipeDataset(data.out)
    for i in range(len(ds)):
        j = ref.index(ds.provenance(i))
        np.testing.assert_array_equal(ds[i][0], full[j][0])
    check([r for r in ref if r["copy"] >= 1], select="copies")
    flipped = [r for r in ref if applied(r, "flip")]
    assert 0 < len(flipped) < 12
    check(flipped, stages_applied="flip")
    check([r for r in ref if applied(r, "flip") and applied(r, "gaussian_noise")],
          stages_applied=("flip", "gaussian_noise"))
    stds = sorted(s["std"] for r in ref for s in applied(r, "gaussian_noise"))
    lo, hi = stds[1], stds[-2]
    in_range = [r for r in ref if any(lo <= s["std"] <= hi for s in applied(r, "gaussian_noise"))]
    assert 0 < len(in_range) < len(stds)
    check(in_range, param_range={"gaussian_noise.std": (lo, hi)})
    check([r for r in ref if r["input_index"] == 1], where=lambda r: r["input_index"] == 1)
    check([], select="originals", stages_applied="flip")
    with pytest.raises(SeispipeDataError, match="select='original'"):
        SeispipeDataset(data.out, select="original")


def test_verify_names_corrupt_files(data, tmp_path):
    part = copy_folder(data.parts[1], tmp_path / "fwi-test-part-002")
    SeispipeDataset(part, verify=True)
    p = part / "data3.npy"
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    p.write_bytes(raw)
    with pytest.raises(SeispipeDataError) as e:
        SeispipeDataset(part, verify=True)
    msg = str(e.value)
    assert "1 of 6 files are corrupt" in msg and "data3.npy (sha256" in msg, msg
    assert "data4.npy" not in msg
    # Without verify the flipped byte is read as it is.
    assert len(SeispipeDataset(part)) == 8


def test_missing_and_truncated_files_are_named_before_any_read(data, tmp_path):
    part = copy_folder(data.parts[0], tmp_path / "fwi-test-part-001")
    os.remove(part / "model2.npy")
    with open(part / "data1.npy", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(SeispipeDataError) as e:
        SeispipeDataset(part)
    msg = str(e.value)
    assert "missing or truncated" in msg
    assert "model2.npy" in msg and "data1.npy (1000 bytes, the manifest says" in msg, msg


def test_a_label_shard_without_data_is_refused(data, tmp_path):
    part = copy_folder(data.parts[0], tmp_path / "fwi-test-part-001")
    os.remove(part / "data2.npy")
    with pytest.raises(SeispipeDataError, match=r"data2\.npy \(its label shard model2\.npy is "
                                                 r"there: labels without data\)"):
        SeispipeDataset(part)
    m = manifest(part)
    m["shards"][1]["files"] = m["shards"][1]["files"][1:]
    (part / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SeispipeDataError, match="shard 2 lists label file model2.npy without a "
                                                "data file"):
        SeispipeDataset(part)


def test_paths_that_are_not_outputs_or_parts_are_named(data, tmp_path):
    with pytest.raises(SeispipeDataError, match="neither a seispipe output nor a Kaggle part"):
        SeispipeDataset(tmp_path)
    # The folder above the parts: the message says what to give instead.
    with pytest.raises(SeispipeDataError, match=r"it holds 3 that are \(fwi-test-part-001 …\)"):
        SeispipeDataset(data.root / "kg")
    with pytest.raises(SeispipeDataError, match="no such folder"):
        SeispipeDataset(tmp_path / "nowhere")
    with pytest.raises(SeispipeDataError, match="is a file: give the output or part folder"):
        SeispipeDataset(data.out / "manifest.json")
    with pytest.raises(SeispipeDataError, match="no folder matches this pattern"):
        SeispipeDataset(str(tmp_path / "slug-part-*"))
    broken = copy_folder(data.parts[2], tmp_path / "broken")
    m = manifest(broken)
    del m["shards"][0]["samples"]
    (broken / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SeispipeDataError, match=r"broken/manifest\.json: shard record 1 is not "
                                                r"one seispipe writes \(KeyError: 'samples'\)"):
        SeispipeDataset(broken)
    (tmp_path / "manifest.json").write_text('{"files": []}')
    with pytest.raises(SeispipeDataError, match="not a seispipe manifest"):
        SeispipeDataset(tmp_path)


def test_different_pipelines_are_refused_unless_allowed(data):
    with pytest.raises(SeispipeDataError) as e:
        SeispipeDataset([data.out, data.out16])
    msg = str(e.value)
    assert "different pipelines" in msg and "allow_mixed=True" in msg
    assert str(data.out) in msg and str(data.out16) in msg
    ds = SeispipeDataset([data.out, data.out16], allow_mixed=True)
    assert_same_samples(ds, reference([data.out]) + reference([data.out16]))
    # Unlike shapes cannot be batched; labelled with unlabelled needs labels=False.
    with pytest.raises(SeispipeDataError, match="different shapes"):
        SeispipeDataset([data.out, data.spec], allow_mixed=True)
    with pytest.raises(SeispipeDataError, match="labels=False"):
        SeispipeDataset([data.out, data.unlabelled], allow_mixed=True)
    assert len(SeispipeDataset([data.out, data.unlabelled], allow_mixed=True, labels=False)) == 24


def test_a_part_given_twice_is_refused(data):
    with pytest.raises(SeispipeDataError, match="shard 3 of one output is in both"):
        SeispipeDataset([data.parts[1], data.parts[1]])
    with pytest.raises(SeispipeDataError, match="give each output or part once"):
        SeispipeDataset([data.out, data.parts[2]])


def test_a_file_unlike_its_manifest_record_is_named_when_read(data, tmp_path):
    out = copy_folder(data.out16, tmp_path / "out16")
    m = manifest(out)
    m["shards"][0]["files"][0]["dtype"] = "<f4"
    (out / "manifest.json").write_text(json.dumps(m))
    ds = SeispipeDataset(out)
    with pytest.raises(SeispipeDataError, match=r"data1\.npy: holds \[5, 5, 1000, 70\] <f2, "
                                                r"the manifest says \[5, 5, 1000, 70\] <f4"):
        ds[0]


def test_files_are_read_by_role_not_by_place(data, tmp_path):
    out = copy_folder(data.out, tmp_path / "out")
    m = manifest(out)
    for s in m["shards"]:
        s["files"].reverse()  # label first, then data
    (out / "manifest.json").write_text(json.dumps(m))
    assert_same_samples(SeispipeDataset(out), reference([data.out]))
    m["shards"][0]["files"].append(dict(m["shards"][0]["files"][1]))
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SeispipeDataError, match="shard 1 lists 2 data files"):
        SeispipeDataset(out)
    m["shards"][0]["files"][-1]["path"] = "other/x1.npy"
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SeispipeDataError, match="neither a data file"):
        SeispipeDataset(out)


def test_transform_return_index_and_pickling(data):
    ds = SeispipeDataset(data.out, transform=lambda x, y: (x[:, :10], y.mean()),
                         return_index=True)
    i, x, y = ds[4]
    plain = SeispipeDataset(data.out)[4]
    assert i == 4
    np.testing.assert_array_equal(x, plain[0][:, :10])
    assert y == plain[1].mean()
    # Open memory maps never travel in a pickle (spawned DataLoader workers).
    full = SeispipeDataset(data.out, max_open_shards=2)
    for k in range(len(full)):
        full[k]
    assert len(full._open) == 2
    blob = pickle.dumps(full)
    assert len(blob) < 100_000
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again[17][0], full[17][0])
