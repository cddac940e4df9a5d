"""The hub client, the token store and the resumable downloader, against a loopback hub.

Nothing here is mocked: the real ``huggingface_hub`` client and our downloader talk
HTTP to :mod:`tests.hub_server`, whose fault knobs drop connections, throttle,
corrupt and ignore ``Range``; a download is killed with SIGKILL in a child process
and resumed here; a full disk is a real 2 MB tmpfs where mounting is allowed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import keyring
import pytest
from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
from keyring.backend import KeyringBackend
from keyring.backends import fail

from core.errors import (
    DiskFull,
    DownloadCancelled,
    DownloadCorrupt,
    GatedRepo,
    HubError,
    HubFileNotFound,
    HubRepoNotFound,
    HubUnreachable,
    TokenStoreUnavailable,
)
from core.models import download as download_module
from core.models import token as token_store
from core.models.download import discard_partial, download_file
from core.models.hub import HubClient, HubFile, free_disk, quantization_of, total_ram
from core.models.journal import pending_downloads
from core.models.transfer import PROGRESS_INTERVAL, DownloadProgress
from tests.hub_server import TOKEN, HubServer, Repo, git_blob_sha1

ROOT = Path(__file__).resolve().parent.parent
MB = 1_000_000
GGUF = "org/tiny-GGUF"
BIG = "tiny-Q4_K_M.gguf"

# The same download, in a child process that a test can kill.
CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from core.errors import CotragError
from core.models.download import download_file
from core.models.hub import HubClient
endpoint, cache, journal, repo, filename = sys.argv[2:7]
try:
    download_file(HubClient(endpoint=endpoint, cache_dir=Path(cache)), repo, filename,
                  journal_dir=Path(journal))
except CotragError as e:
    print(type(e).__name__, e, flush=True)
    sys.exit(3)
"""


def _random(size: int, seed: int) -> bytes:
    return hashlib.shake_256(seed.to_bytes(4, "little")).digest(size)


FILES = {
    BIG: _random(2 * MB, 1),
    "tiny-q8_0.gguf": _random(300_000, 2),
    "tiny-IQ3_XXS.gguf": _random(100_000, 3),
    "tiny.BF16.gguf": _random(400_000, 4),
    "big-8mb-F16.gguf": _random(8 * MB, 5),
    "config.json": b'{"model_type": "llama"}',
    "README.md": b"---\nlicense: apache-2.0\n---\n# tiny\n",
}


@pytest.fixture(autouse=True)
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    # conftest switches the hub library offline for the whole suite; this file talks to
    # a loopback hub only, so it is allowed online (the flag is read per request).
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def hub() -> Iterator[HubServer]:
    repos = [
        Repo.of(
            GGUF,
            dict(FILES),
            library="gguf",
            tags=["gguf", "llama"],
            license="apache-2.0",
            downloads=900,
            likes=10,
            last_modified="2024-03-01T00:00:00.000Z",
        ),
        Repo.of(
            "org/tiny-mlx-4bit",
            {"model.safetensors": _random(100_000, 6), "config.json": b'{"quantization": {}}'},
            library="mlx",
            tags=["mlx"],
            downloads=50,
            likes=99,
            last_modified="2025-01-01T00:00:00.000Z",
        ),
        Repo.of(
            "org/tiny-hf",
            {
                "model.safetensors": _random(50_000, 7),
                "pytorch_model.bin": _random(50_000, 8),
                "tokenizer.json": b"{}",
            },
            library="transformers",
            downloads=300,
            likes=1,
            last_modified="2023-01-01T00:00:00.000Z",
        ),
        Repo.of("org/gated-GGUF", {"g-Q4_0.gguf": _random(200_000, 9)}, gated="manual"),
        Repo.of("org/secret", {"s.gguf": _random(10_000, 10)}, private=True),
    ]
    with HubServer(repos) as server:
        yield server


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hub-cache"


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal"


def client(hub: HubServer, cache: Path, token: str | None = None) -> HubClient:
    return HubClient(endpoint=hub.url, token=token, cache_dir=cache)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def partial_of(cache: Path, repo_id: str, data: bytes) -> Path:
    folder = "models--" + repo_id.replace("/", "--")
    return cache / folder / "blobs" / f"{hashlib.sha256(data).hexdigest()}.incomplete"


def settled(hub: HubServer, repo_id: str, path: str) -> int:
    """Bytes served for ``path`` once no connection is still sending (a paused one may be)."""
    last = -1
    while (now := hub.bytes_served(repo_id, path)) != last:
        last = now
        time.sleep(0.2)
    return now


def pause_at(fraction: float, total: int) -> tuple[threading.Event, Callable[..., None]]:
    """A cancel event and a progress callback that sets it once ``fraction`` is on disk."""
    cancel = threading.Event()

    def on_progress(p: DownloadProgress) -> None:
        if p.done >= fraction * total:
            cancel.set()

    return cancel, on_progress


# -- search and files ---------------------------------------------------------------------


def test_search_finds_by_text_and_sorts(hub: HubServer, cache: Path) -> None:
    c = client(hub, cache)
    by_downloads = [m.repo_id for m in c.search("tiny")]
    assert by_downloads == [GGUF, "org/tiny-hf", "org/tiny-mlx-4bit"]
    assert c.search("tiny", sort="likes")[0].repo_id == "org/tiny-mlx-4bit"
    assert [m.repo_id for m in c.search("TINY", sort="recent")] == [
        "org/tiny-mlx-4bit",
        GGUF,
        "org/tiny-hf",
    ]
    assert [m.repo_id for m in c.search("", library="gguf")] == [GGUF]
    assert len(c.search("tiny", limit=1)) == 1

    top = c.search("tiny-GGUF")[0]
    assert (top.downloads, top.likes, top.library) == (900, 10, "gguf")
    assert top.last_modified is not None and top.last_modified.startswith("2024-03-01")
    assert "license:apache-2.0" in top.tags
    assert [m.gated for m in c.search("gated")] == ["manual"]


def test_private_repo_is_listed_only_with_a_token(hub: HubServer, cache: Path) -> None:
    assert client(hub, cache).search("secret") == []
    assert [m.repo_id for m in client(hub, cache, TOKEN).search("secret")] == ["org/secret"]


def test_files_lists_sizes_checksums_formats_and_quantizations(hub: HubServer, cache: Path) -> None:
    repo = client(hub, cache).files(GGUF)
    assert repo.commit == hub.repos[GGUF].commit
    assert (repo.licence, repo.library, repo.gated) == ("apache-2.0", "gguf", False)
    sizes = {f.path: f.size for f in repo.files}
    assert sizes == {path: len(data) for path, data in FILES.items()}
    big = repo.file(BIG)
    assert big is not None and big.sha256 == hashlib.sha256(FILES[BIG]).hexdigest()
    config = repo.file("config.json")
    assert config is not None and (config.format, config.sha256, config.quantization) == (
        "config",
        None,
        None,
    )
    assert config.blob_id == git_blob_sha1(FILES["config.json"])
    assert [(f.path, f.quantization) for f in repo.ggufs()] == [
        ("tiny-IQ3_XXS.gguf", "IQ3_XXS"),
        ("tiny-q8_0.gguf", "Q8_0"),
        ("tiny.BF16.gguf", "BF16"),
        (BIG, "Q4_K_M"),
        ("big-8mb-F16.gguf", "F16"),
    ]

    mlx = {f.path: f.format for f in client(hub, cache).files("org/tiny-mlx-4bit").files}
    assert mlx == {"model.safetensors": "mlx", "config.json": "config"}
    plain = {f.path: f.format for f in client(hub, cache).files("org/tiny-hf").files}
    assert plain == {
        "model.safetensors": "safetensors",
        "pytorch_model.bin": "pytorch",
        "tokenizer.json": "config",
    }


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("model-q8_0.gguf", "Q8_0"),
        ("Llama-3.2-1B.IQ3_XXS.gguf", "IQ3_XXS"),
        ("phi-f16.gguf", "F16"),
        ("gemma-2b-bf16.gguf", "BF16"),
        ("sub/dir/x-Q5_K_S.gguf", "Q5_K_S"),
        ("qwen2.5-0.5b.gguf", None),
        ("SmolLM2-135M.gguf", None),
    ],
)
def test_quantization_from_gguf_names(name: str, quant: str | None) -> None:
    assert quantization_of(name) == quant


def test_fit_warnings_name_disk_and_memory(hub: HubServer, cache: Path, tmp_path: Path) -> None:
    c = client(hub, cache)
    free, ram = free_disk(tmp_path), total_ram()
    assert free is not None and ram is not None
    fits = HubFile("m-Q4_0.gguf", 1000, None, None, "gguf", "Q4_0")
    assert c.fit_warnings(fits, dest=tmp_path / "not-yet-created") == []

    too_big = HubFile("m-F16.gguf", max(free, ram) + 1, None, None, "gguf", "F16")
    disk, memory = c.fit_warnings(too_big, dest=tmp_path)
    assert str(tmp_path) in disk and "free" in disk
    assert "memory" in memory and "smaller quantization" in memory
    # A huge non-model file only needs the disk.
    blob = HubFile("data.bin.zip", free + 1, None, None, "other")
    assert len(c.fit_warnings(blob, dest=tmp_path)) == 1


# -- downloads ----------------------------------------------------------------------------


def test_download_lands_in_the_standard_hub_cache(hub: HubServer, cache: Path) -> None:
    path = download_file(client(hub, cache, TOKEN), GGUF, BIG)
    assert sha256(path) == hashlib.sha256(FILES[BIG]).hexdigest()
    assert path.is_symlink() and not os.readlink(path).startswith("/")
    commit = hub.repos[GGUF].commit
    assert path == cache / "models--org--tiny-GGUF" / "snapshots" / commit / BIG
    assert (cache / "models--org--tiny-GGUF" / "refs" / "main").read_text() == commit
    assert try_to_load_from_cache(GGUF, BIG, cache_dir=cache) == str(path)
    assert hf_hub_download(GGUF, BIG, cache_dir=cache, local_files_only=True) == str(path)

    # The token went to the hub, never to the CDN that served the bytes.
    to_cdn = [r for r in hub.requests if r.host.startswith("localhost")]
    assert to_cdn and all(r.authorization is None for r in to_cdn)
    assert any(r.authorization == f"Bearer {TOKEN}" for r in hub.requests if r.method == "HEAD")

    # Already there: nothing fetched again.
    served = hub.bytes_served(GGUF, BIG)
    assert download_file(client(hub, cache), GGUF, BIG) == path
    assert hub.bytes_served(GGUF, BIG) == served


def test_hf_hub_download_waits_for_our_download_of_the_same_blob(
    hub: HubServer, cache: Path
) -> None:
    hub.faults.throttle_bps = 4 * MB  # ~0.5 s for the 2 MB file
    ours: list[Path] = []
    worker = threading.Thread(
        target=lambda: ours.append(download_file(client(hub, cache), GGUF, BIG))
    )
    worker.start()
    partial = partial_of(cache, GGUF, FILES[BIG])
    while not partial.exists() and worker.is_alive():
        time.sleep(0.01)
    # Same lock file (.locks/models--org--tiny-GGUF/<etag>.lock): it waits, then finds the blob.
    theirs = hf_hub_download(GGUF, BIG, cache_dir=cache, endpoint=hub.url, token=False)
    worker.join()
    assert [Path(theirs)] == ours
    assert settled(hub, GGUF, BIG) == len(FILES[BIG])


def test_small_files_are_checked_by_git_blob_id(hub: HubServer, cache: Path) -> None:
    path = download_file(client(hub, cache), GGUF, "README.md")
    assert path.read_bytes() == FILES["README.md"]


def test_no_token_means_none_sent_even_with_one_on_the_machine(
    hub: HubServer, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_from_the_environment")
    c = client(hub, cache)
    c.search("tiny")
    c.files(GGUF)
    download_file(c, GGUF, "tiny-q8_0.gguf")
    assert hub.requests and all(r.authorization is None for r in hub.requests)


def test_dropped_connections_resume_where_they_stopped(hub: HubServer, cache: Path) -> None:
    hub.faults.drop_after, hub.faults.drop_times = 800_000, -1  # every response
    seen: list[DownloadProgress] = []
    path = download_file(client(hub, cache), GGUF, BIG, progress=seen.append)
    assert path.read_bytes() == FILES[BIG]
    size = len(FILES[BIG])
    assert hub.bytes_served(GGUF, BIG) <= size + 128 * 1024
    ranges = [r.range for r in hub.requests if r.method == "GET" and r.path.startswith("/cdn/")]
    assert ranges[0] is None and all(r and r.startswith("bytes=") for r in ranges[1:])
    assert len(ranges) >= 3
    assert seen[-1].done == seen[-1].total == size


def test_resume_after_the_process_was_killed(
    hub: HubServer, cache: Path, journal: Path, tmp_path: Path
) -> None:
    name, data = "big-8mb-F16.gguf", FILES["big-8mb-F16.gguf"]
    hub.faults.throttle_bps = 4 * MB
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ROOT), hub.url, str(cache), str(journal), GGUF, name],
        env={**os.environ, "HF_HUB_OFFLINE": "0"},
    )
    partial = partial_of(cache, GGUF, data)
    deadline = time.monotonic() + 20
    while (
        not partial.exists() or partial.stat().st_size < len(data) // 2
    ) and child.poll() is None:
        assert time.monotonic() < deadline, "the child download never reached 50%"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    assert child.wait(10) == -signal.SIGKILL
    on_disk = partial.stat().st_size
    assert 0.4 * len(data) < on_disk < len(data)

    [paused] = pending_downloads(journal, cache)
    assert (paused.repo_id, paused.filename, paused.size) == (GGUF, name, len(data))
    assert paused.done == on_disk

    hub.faults.throttle_bps = None
    seen: list[DownloadProgress] = []
    path = download_file(client(hub, cache), GGUF, name, progress=seen.append, journal_dir=journal)
    assert sha256(path) == hashlib.sha256(data).hexdigest()
    assert seen[0].resumed_from == on_disk
    # What the server had sent but the killed child had not yet written (socket buffers,
    # one read) is fetched again: 80 kB was seen on a loaded machine. A download that
    # started over would fetch the 40%+ on disk twice.
    refetched = hub.bytes_served(GGUF, name) - len(data)
    assert refetched < 0.05 * len(data), f"{refetched} bytes fetched twice"
    assert try_to_load_from_cache(GGUF, name, cache_dir=cache) == str(path)
    assert hf_hub_download(GGUF, name, cache_dir=cache, local_files_only=True) == str(path)
    assert pending_downloads(journal, cache) == []


def test_pause_keeps_the_partial_and_cancel_discards_it(
    hub: HubServer, cache: Path, journal: Path
) -> None:
    hub.faults.throttle_bps = 4 * MB
    c = client(hub, cache)
    cancel, on_progress = pause_at(0.3, len(FILES[BIG]))
    with pytest.raises(DownloadCancelled, match=r"^Paused tiny-Q4_K_M\.gguf at "):
        download_file(c, GGUF, BIG, progress=on_progress, cancel=cancel, journal_dir=journal)
    partial = partial_of(cache, GGUF, FILES[BIG])
    [paused] = pending_downloads(journal, cache)
    assert paused.done == partial.stat().st_size > 0
    assert 0 < paused.fraction < 1

    assert discard_partial(c, GGUF, BIG, journal_dir=journal) is True
    assert not partial.exists()
    assert pending_downloads(journal, cache) == []
    assert discard_partial(c, GGUF, BIG, journal_dir=journal) is False


def test_progress_is_throttled_and_ends_complete(hub: HubServer, cache: Path) -> None:
    hub.faults.throttle_bps = 1 * MB  # 400 kB: ~0.4 s, several intervals
    seen: list[DownloadProgress] = []
    start = time.monotonic()
    download_file(client(hub, cache), GGUF, "tiny.BF16.gguf", progress=seen.append)
    elapsed = time.monotonic() - start
    # ~60 chunks arrive, but at most one call per interval (plus the first and the last).
    assert 3 <= len(seen) <= elapsed / PROGRESS_INTERVAL + 2
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert seen[-1].done == seen[-1].total == len(FILES["tiny.BF16.gguf"])
    middle = seen[1:-1]
    assert all(p.bytes_per_s > 0 and p.eta_s is not None for p in middle)


def test_a_corrupted_partial_is_detected_and_fetched_again(hub: HubServer, cache: Path) -> None:
    hub.faults.throttle_bps = 4 * MB
    cancel, on_progress = pause_at(0.5, len(FILES[BIG]))
    with pytest.raises(DownloadCancelled):
        download_file(client(hub, cache), GGUF, BIG, progress=on_progress, cancel=cancel)
    partial = partial_of(cache, GGUF, FILES[BIG])
    damaged = bytearray(partial.read_bytes())
    damaged[1000] ^= 0xFF
    partial.write_bytes(damaged)

    hub.faults.throttle_bps = None
    path = download_file(client(hub, cache), GGUF, BIG)
    assert path.read_bytes() == FILES[BIG]
    assert not partial.exists()


def test_bytes_damaged_every_time_raise_and_leave_no_partial(
    hub: HubServer, cache: Path, journal: Path
) -> None:
    hub.faults.corrupt_at, hub.faults.corrupt_times = 12345, -1
    with pytest.raises(DownloadCorrupt, match="arrived damaged twice"):
        download_file(client(hub, cache), GGUF, "tiny-q8_0.gguf", journal_dir=journal)
    assert not partial_of(cache, GGUF, FILES["tiny-q8_0.gguf"]).exists()
    assert pending_downloads(journal, cache) == []
    assert hub.bytes_served(GGUF, "tiny-q8_0.gguf") == 2 * len(FILES["tiny-q8_0.gguf"])


def test_a_server_ignoring_range_means_starting_over(hub: HubServer, cache: Path) -> None:
    hub.faults.throttle_bps = 4 * MB
    cancel, on_progress = pause_at(0.4, len(FILES[BIG]))
    with pytest.raises(DownloadCancelled):
        download_file(client(hub, cache), GGUF, BIG, progress=on_progress, cancel=cancel)
    hub.faults.throttle_bps, hub.faults.ignore_range = None, True
    before = settled(hub, GGUF, BIG)
    path = download_file(client(hub, cache), GGUF, BIG)
    assert path.read_bytes() == FILES[BIG]
    assert hub.bytes_served(GGUF, BIG) - before == len(FILES[BIG])


# -- errors -------------------------------------------------------------------------------


def test_gated_repo_needs_a_token(hub: HubServer, cache: Path) -> None:
    anonymous = client(hub, cache)
    assert anonymous.files("org/gated-GGUF").gated == "manual"  # its card is public
    with pytest.raises(GatedRepo) as caught:
        download_file(anonymous, "org/gated-GGUF", "g-Q4_0.gguf")
    message = str(caught.value)
    assert f"{hub.url}/org/gated-GGUF" in message and "cotrag models login" in message

    path = download_file(client(hub, cache, TOKEN), "org/gated-GGUF", "g-Q4_0.gguf")
    assert path.stat().st_size == 200_000

    with pytest.raises(HubError, match="refused the access token"):
        client(hub, cache, "hf_wrong").files(GGUF)


def test_missing_and_private_repos(hub: HubServer, cache: Path) -> None:
    with pytest.raises(HubRepoNotFound, match=r"No repository org/nope on the hub \(or it is"):
        client(hub, cache).files("org/nope")
    with pytest.raises(HubRepoNotFound, match="org/nope"):
        download_file(client(hub, cache, TOKEN), "org/nope", "x.gguf")
    with pytest.raises(HubRepoNotFound, match="private"):
        client(hub, cache).files("org/secret")
    assert client(hub, cache, TOKEN).files("org/secret").files[0].path == "s.gguf"


def test_missing_file_and_revision(hub: HubServer, cache: Path) -> None:
    with pytest.raises(HubFileNotFound, match=r"^org/tiny-GGUF has no file nope.gguf at main\.$"):
        download_file(client(hub, cache), GGUF, "nope.gguf")
    with pytest.raises(HubFileNotFound, match="no revision 'v9'"):
        client(hub, cache).files(GGUF, revision="v9")


def test_unreachable_hub_and_offline_mode(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"  # closed once the block ends
    dead = HubClient(endpoint=url, cache_dir=cache)
    for call in (lambda: dead.files(GGUF), lambda: download_file(dead, GGUF, BIG)):
        with pytest.raises(HubUnreachable, match=f"Cannot reach the hub at {url}: check"):
            call()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnreachable, match="HF_HUB_OFFLINE"):
        dead.files(GGUF)


def test_a_search_of_a_hub_that_refuses_connections_fails_at_once(cache: Path) -> None:
    """Without a network a search said "Searching…" for 23 s (the library's retries)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    started = time.monotonic()
    with pytest.raises(HubUnreachable, match=f"Cannot reach the hub at {url}: check"):
        HubClient(endpoint=url, cache_dir=cache).search("smol")
    assert time.monotonic() - started < 3


# -- a full disk --------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MB filesystem (tmpfs), where this machine lets us mount one."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root on Linux")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_file_larger_than_the_free_space_is_refused_before_any_byte(
    hub: HubServer, small_disk: Path
) -> None:
    c = HubClient(endpoint=hub.url, cache_dir=small_disk)
    with pytest.raises(DiskFull, match=r"big-8mb-F16.gguf needs 8 MB more in .*small-disk"):
        download_file(c, GGUF, "big-8mb-F16.gguf")
    assert hub.bytes_served(GGUF, "big-8mb-F16.gguf") == 0


def test_the_disk_filling_up_during_a_download_keeps_the_partial(
    hub: HubServer, small_disk: Path, journal: Path
) -> None:
    c = HubClient(endpoint=hub.url, cache_dir=small_disk)
    filler = small_disk / "filler"

    def fill_the_disk(p: DownloadProgress) -> None:
        if p.done > 0 and not filler.exists():
            with open(filler, "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 4096)
                except OSError:
                    pass

    name, data = "tiny.BF16.gguf", FILES["tiny.BF16.gguf"]
    hub.faults.throttle_bps = 2 * MB  # several progress calls before the end
    with pytest.raises(DiskFull, match=r"is full: tiny\.BF16\.gguf needs .* the part downloaded"):
        download_file(c, GGUF, name, progress=fill_the_disk, journal_dir=journal)
    partial = partial_of(small_disk, GGUF, data)
    kept = partial.stat().st_size
    assert 0 < kept < len(data)
    assert pending_downloads(journal, small_disk)[0].done == kept

    filler.unlink()
    hub.faults.throttle_bps = None
    path = download_file(c, GGUF, name, journal_dir=journal)
    assert path.read_bytes() == data
    assert hub.bytes_served(GGUF, name) <= len(data) + 128 * 1024


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_file_size_limit_is_reported_as_a_full_disk(
    hub: HubServer, cache: Path, journal: Path
) -> None:
    def limit_files() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (500_000, 500_000))

    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), hub.url, str(cache), str(journal), GGUF, BIG],
        env={**os.environ, "HF_HUB_OFFLINE": "0"},
        preexec_fn=limit_files,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("DiskFull The disk holding")
    assert partial_of(cache, GGUF, FILES[BIG]).stat().st_size == 500_000


def test_not_enough_free_space_reported_before_starting(
    hub: HubServer, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where no small filesystem can be mounted, the pre-start check still has a test.
    monkeypatch.setattr(download_module, "free_disk", lambda path: 1000)
    with pytest.raises(
        DiskFull, match=r"^tiny-q8_0.gguf needs 300 kB more in .*, which has only 1 kB free: free"
    ):
        download_file(client(hub, cache), GGUF, "tiny-q8_0.gguf")
    assert hub.bytes_served(GGUF, "tiny-q8_0.gguf") == 0


# -- the token store ----------------------------------------------------------------------


class MemoryKeyring(KeyringBackend):
    """A keyring that lives in this process (the tests must not touch the real one)."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.saved: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.saved.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.saved[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        if self.saved.pop((service, username), None) is None:
            raise PasswordDeleteError("not saved")


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryKeyring]:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


def test_token_is_kept_in_the_keyring(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert token_store.get_token() is None
    token_store.set_token("  hf_saved  ")
    assert memory_keyring.saved == {("cotrag-studio", "huggingface"): "hf_saved"}
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert token_store.get_token() == "hf_saved"  # the saved one wins
    token_store.clear_token()
    assert token_store.get_token() == "hf_env"  # then the environment
    token_store.clear_token()  # nothing saved: nothing to do
    with pytest.raises(ValueError, match="empty"):
        token_store.set_token("   ")


def test_without_a_keyring_the_token_comes_from_the_environment(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring.set_keyring(fail.Keyring())
    with pytest.raises(TokenStoreUnavailable, match="set the HF_TOKEN environment variable"):
        token_store.set_token("hf_x")
    with pytest.raises(TokenStoreUnavailable):
        token_store.clear_token()
    assert token_store.get_token() is None
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert token_store.get_token() == "hf_env"
