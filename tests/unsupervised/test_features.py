"""Feature extraction: equals a direct forward, cache hits run no forward, misses recompute, runs resume."""

from __future__ import annotations

import io
import signal
import subprocess

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from tests.support.unsup_helpers import StandInBackbone, make_folder, worker_command
from unsupervised import DataError, ImageFolderData, extract_features


def _direct(backbone, data):
    batch = torch.stack([backbone.preprocess(data.load_image(i)) for i in range(len(data))])
    with torch.no_grad():
        return backbone(batch).numpy()


def test_extraction_equals_direct_forward(backbone, labelled_folder):
    data = ImageFolderData(labelled_folder)
    features = extract_features(backbone, data, batch_size=4)
    assert features.shape == (15, 128) and features.array.dtype == np.float32
    np.testing.assert_allclose(np.asarray(features), _direct(backbone, data), rtol=1e-4, atol=1e-5)
    assert features.paths == data.paths and features.labels.tolist() == data.labels.tolist()
    assert features.class_names == ["apple", "banana", "cherry"] and features.key is None
    assert backbone.forward_calls == 1 + 4  # direct (1) + ceil(15 / 4) batches


def test_workers_give_the_same_features(backbone, labelled_folder):
    data = ImageFolderData(labelled_folder)
    in_process = extract_features(backbone, data, batch_size=8)
    with_workers = extract_features(backbone, data, batch_size=8, num_workers=2)
    assert np.array_equal(np.asarray(in_process), np.asarray(with_workers))


def test_warm_cache_runs_no_forward_and_returns_identical_bytes(backbone, labelled_folder, tmp_path):
    cache = tmp_path / "cache"
    data = ImageFolderData(labelled_folder)
    cold = extract_features(backbone, data, batch_size=4, cache_dir=cache)
    calls = backbone.forward_calls
    warm = extract_features(backbone, ImageFolderData(labelled_folder), batch_size=4, cache_dir=cache)
    assert backbone.forward_calls == calls
    assert warm.key == cold.key and np.asarray(warm).tobytes() == np.asarray(cold).tobytes()
    assert isinstance(warm.array, np.memmap) and not warm.array.flags.writeable
    assert sorted(p.name for p in cache.iterdir()) == [cold.key, f"{cold.key}.lock"]  # no partial left behind


def test_cache_misses_on_other_backbone_files_or_transform(backbone, labelled_folder, tmp_path):
    cache = tmp_path / "cache"
    base = extract_features(backbone, ImageFolderData(labelled_folder), cache_dir=cache)

    other = StandInBackbone(seed=1)  # other weights, other sha256
    moved = extract_features(other, ImageFolderData(labelled_folder), cache_dir=cache)
    assert other.forward_calls == 1 and moved.key != base.key
    assert not np.allclose(np.asarray(moved), np.asarray(base))

    transform = T.Compose([T.Resize(64), T.CenterCrop(64), T.ToTensor(), T.Normalize(backbone.mean, backbone.std)])
    calls = backbone.forward_calls
    other_tf = extract_features(backbone, ImageFolderData(labelled_folder, transform=transform), cache_dir=cache)
    assert backbone.forward_calls == calls + 1 and other_tf.key != base.key

    image = labelled_folder / "apple" / "img001.png"
    Image.open(image).rotate(90).save(image)  # same name, new content and size
    calls = backbone.forward_calls
    changed = extract_features(backbone, ImageFolderData(labelled_folder), cache_dir=cache)
    assert backbone.forward_calls == calls + 1 and changed.key != base.key
    assert not np.allclose(changed[1], base[1]) and np.array_equal(changed[0], base[0])


def test_an_entry_being_written_by_another_process_is_refused(backbone, labelled_folder, tmp_path):
    from probe.errors import OutputError
    from unsupervised.cache import CacheEntry, EntryLock, key_fields, key_of

    data = ImageFolderData(labelled_folder)
    fields = key_fields(backbone, data.fingerprint(), backbone.preprocess)
    with EntryLock(CacheEntry(tmp_path / "cache", key_of(fields), fields)):  # as another writer would hold it
        with pytest.raises(OutputError, match="being written by another process"):
            extract_features(backbone, data, cache_dir=tmp_path / "cache")
    assert backbone.forward_calls == 0
    extract_features(backbone, data, cache_dir=tmp_path / "cache")  # free again


def test_damaged_cache_entry_is_recomputed_not_used(backbone, labelled_folder, tmp_path):
    cache = tmp_path / "cache"
    first = extract_features(backbone, ImageFolderData(labelled_folder), cache_dir=cache)
    reference = np.array(first.array)
    stored = cache / first.key / "features.npy"
    stored.write_bytes(stored.read_bytes()[:-512])  # cut short, as by a full disk outside our control
    calls = backbone.forward_calls
    again = extract_features(backbone, ImageFolderData(labelled_folder), cache_dir=cache)
    assert backbone.forward_calls == calls + 1 and again.key == first.key
    np.testing.assert_array_equal(np.asarray(again), reference)


def test_interrupted_extraction_resumes_without_recomputing(labelled_folder, tmp_path):
    cache = tmp_path / "cache"
    data = ImageFolderData(labelled_folder)
    reference = extract_features(StandInBackbone(), data, batch_size=2)

    crashing = StandInBackbone()
    crashing.fail_after = 3
    with pytest.raises(RuntimeError, match="simulated crash"):
        extract_features(crashing, data, batch_size=2, cache_dir=cache)
    folders = [p.name for p in cache.iterdir() if p.is_dir()]
    assert len(folders) == 1 and folders[0].endswith(".partial")  # nothing that looks finished

    resumed_backbone = StandInBackbone()
    resumed = extract_features(resumed_backbone, ImageFolderData(labelled_folder), batch_size=2, cache_dir=cache)
    assert resumed_backbone.forward_calls == 8 - 3  # 15 images in batches of 2: 8 batches, 3 were done
    np.testing.assert_array_equal(np.asarray(resumed), np.asarray(reference))


def test_rows_neither_done_nor_failed_are_never_published(backbone, labelled_folder, tmp_path):
    """A work area with a row that is not done (and did not fail to decode) is refused, naming the row; nothing
    is published, and the kept work area lets a rerun compute just that row's batch."""
    from unsupervised.cache import CacheEntry, Partial, key_fields, key_of

    data = ImageFolderData(labelled_folder)
    reference = np.asarray(extract_features(StandInBackbone(), data, batch_size=4))
    cache = tmp_path / "cache"
    fields = key_fields(backbone, data.fingerprint(), backbone.preprocess)
    entry = CacheEntry(cache, key_of(fields), fields)
    entry.prepare_partial(len(data), reference.shape[1])
    partial = Partial(entry.partial_dir, rank=0)
    done = np.array([row for row in range(len(data)) if row != 6])
    partial.write(done, reference[done])
    partial.flush()
    with pytest.raises(DataError, match=r"left 1 of 15 images without features: banana/img001\.png \(rows 6\)"):
        entry.finalise(partial, data.rel_paths, data.labels, data.class_names)
    assert not entry.final_dir.exists() and entry.partial_dir.is_dir()

    features = extract_features(backbone, data, batch_size=4, cache_dir=cache)
    assert backbone.forward_calls == 1  # the batch of rows 4-7 only
    assert np.asarray(features).tobytes() == reference.tobytes()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_killed_extraction_keeps_its_finished_batches(labelled_folder, tmp_path, signum):
    cache = tmp_path / "cache"
    command, env = worker_command("slow", str(labelled_folder), str(cache))
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = 0
        for line in child.stdout:
            seen = int(line.split()[1])
            if seen == 3:
                child.send_signal(signum)
                break
        assert seen == 3, child.stderr.read()[-2000:]
        child.wait(timeout=60)
    finally:
        child.kill()
    assert child.returncode != 0
    resumed = StandInBackbone()
    features = extract_features(resumed, ImageFolderData(labelled_folder), batch_size=2, cache_dir=cache)
    assert resumed.forward_calls <= 8 - 2  # of 8 batches, the 3 forwards seen (minus one in flight) are kept
    reference = extract_features(StandInBackbone(), ImageFolderData(labelled_folder), batch_size=2)
    np.testing.assert_array_equal(np.asarray(features), np.asarray(reference))


def _truncated_jpeg(path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def test_images_failing_at_decode_are_skipped_not_fatal(backbone, labelled_folder, tmp_path):
    _truncated_jpeg(labelled_folder / "banana" / "cut.jpg")
    (labelled_folder / "cherry" / "page.jpg").write_text("<html>not a picture</html>")
    data = ImageFolderData(labelled_folder, check_headers=True)
    assert len(data) == 16 and data.skipped[0][0].endswith("page.jpg")  # cut.jpg's header looks fine
    cache = tmp_path / "cache"
    features = extract_features(
        backbone, ImageFolderData(labelled_folder), batch_size=4, cache_dir=cache, num_workers=1
    )
    assert len(features) == 15 and all("cut.jpg" not in p and "page.jpg" not in p for p in features.paths)
    assert [(p.split("/")[-1], why.split(":")[0].split(" (")[0]) for p, why in features.skipped] == [
        ("cut.jpg", "cannot decode"),
        ("page.jpg", "not an image"),
    ]
    assert features.labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    good = data.subset([i for i, p in enumerate(data.rel_paths) if "cut" not in p])
    np.testing.assert_allclose(np.asarray(features), _direct(backbone, good), rtol=1e-4, atol=1e-5)
    again = extract_features(backbone, ImageFolderData(labelled_folder), cache_dir=cache)
    assert again.skipped == features.skipped and np.array_equal(np.asarray(again), np.asarray(features))


class _NanForBrightCorner(StandInBackbone):
    def forward(self, x):
        out = super().forward(x).clone()
        out[x[:, :, :4, :4].mean(dim=(1, 2, 3)) > 2.0] = float("nan")  # white corner after normalisation
        return out


def test_nonfinite_features_name_the_images(labelled_folder, tmp_path):
    image = Image.open(labelled_folder / "cherry" / "img002.png").convert("RGB")
    image.paste((255, 255, 255), (0, 0, 20, 20))
    image.save(labelled_folder / "cherry" / "img002.png")
    for cache in (None, tmp_path / "cache", tmp_path / "cache"):  # cold, cold with cache, warm
        with pytest.raises(DataError, match=r"NaN/inf features for 1 images.*cherry/img002\.png"):
            extract_features(_NanForBrightCorner(), ImageFolderData(labelled_folder), cache_dir=cache)


def test_bad_arguments(backbone, labelled_folder):
    data = ImageFolderData(labelled_folder)
    with pytest.raises(DataError, match="batch_size"):
        extract_features(backbone, data, batch_size=0)
    with pytest.raises(DataError, match="num_workers"):
        extract_features(backbone, data, num_workers=-1)
    odd_sizes = ImageFolderData(labelled_folder, transform=T.ToTensor())
    with pytest.raises(DataError, match="one size"):
        extract_features(backbone, odd_sizes)


def test_flat_folder_features_have_no_labels(backbone, tmp_path):
    features = extract_features(backbone, ImageFolderData(make_folder(tmp_path / "flat", None, flat_count=3)))
    assert features.labels is None and features.class_names == [] and len(features) == 3
